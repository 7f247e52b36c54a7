"""tools/assignments.py and the masters under assignments/: otter assign builds each one, and otter's local
grader (otter.api.grade_submission, what `otter run` runs) gives the solution full marks, the untouched
student notebook zero, and a notebook with one plausible mistake per question exactly the points its tests
leave it."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from assignments import CHAPTERS, build, grade, master_path  # noqa: E402
from toc_notebooks import read_course_chapters  # noqa: E402

# Every grade below starts a kernel; the whole file stays on one pytest-xdist worker (--dist loadfile,
# or this group under --dist loadgroup) so that the assignments are built once.
pytestmark = pytest.mark.xdist_group("assignments")

# Per assignment: the mistakes (text of the solution, what a student might write instead), and the
# score of each question with those mistakes. One mistake per question; the questions are graded apart.
WRONG_ANSWERS = {
    "concepts": ([
        # the probe trains the whole network, not the head alone
        ("model.requires_grad_(False)  # the backbone is frozen...", "model.requires_grad_(True)"),
        ("torch.optim.Adam(model.get_submodule(head).parameters(), lr=learning_rate)",
         "torch.optim.Adam(model.parameters(), lr=learning_rate)"),
        # fine-tuning leaves BatchNorm in train mode: its statistics drift to the target batch
        ("    keep_frozen_batchnorm_in_eval(model)  # BatchNorm in eval mode: the stored statistics\n", ""),
    ], {"train_head": 0, "fine_tune_all": 0}),
    "math": ([
        # the gradient without the softmax: logits - onehot
        ("(F.softmax(logits, dim=1) - F.one_hot(labels, num_classes).to(logits.dtype)) / num_examples",
         "(logits - F.one_hot(labels, num_classes).to(logits.dtype)) / num_examples"),
        # the head's gradients of the summed loss, not of the mean
        (".to(logits.dtype)) / num_examples  # dL/dZ", ".to(logits.dtype))  # dL/dZ"),
    ], {"softmax_cross_entropy_gradient": 0, "linear_head_gradients": 1}),
    "vgg16": ([
        # the whole classifier replaced: fc6 and fc7 are lost
        ("model.classifier[6] = nn.Linear(model.classifier[6].in_features, num_classes)",
         "model.classifier = nn.Linear(model.classifier[0].in_features, num_classes)"),
        # the new head at the backbone's rate
        ('{"params": list(head.parameters()), "lr": head_lr}', '{"params": list(head.parameters()), "lr": backbone_lr}'),
    ], {"replace_head": 1, "parameter_groups": 1}),
    "bert": ([
        # weight decay on the LayerNorm weights
        ('no_decay = ["bias", "LayerNorm.weight"]', 'no_decay = ["bias"]'),
        # no warmup
        ("int(warmup_fraction * num_training_steps)", "0"),
        # no gradient clipping
        ("        nn.utils.clip_grad_norm_(parameters, max_norm=1.0)\n", ""),
    ], {"parameter_groups": 1, "warmup_schedule": 0, "train_epoch": 1}),
    "peft": ([
        # LoRA without the alpha / r scaling
        ("self.base(inputs) + self.scaling * (inputs", "self.base(inputs) + (inputs"),
        # the merge forgets the scaling too
        ("layer.base.weight + (alpha / rank) * layer.lora_B", "layer.base.weight + layer.lora_B"),
    ], {"LoRALinear": 1, "merge": 0}),
    "fusion": ([
        # WiSE-FT on the weights and biases only: BatchNorm's running statistics come from one end
        ("if start[key].is_floating_point()", 'if key.endswith(("weight", "bias"))'),
        # the greedy soup tries the runs in the order given, not best first
        ("order = sorted(range(len(states)), key=lambda index: -score(states[index]))", "order = list(range(len(states)))"),
    ], {"interpolate_weights": 1, "greedy_soup": 1}),
}
KINDS = ("solution", "student", "wrong")


def with_mistakes(solution: Path, mistakes: list[tuple[str, str]], target: Path) -> None:
    """Write the solution notebook with each mistake made once, in its code cell."""
    notebook = nbformat.read(solution, as_version=4)
    for old, new in mistakes:
        cells = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
        assert cells, f"{solution.name}: the solution no longer contains {old!r}"
        cells[0].source = cells[0].source.replace(old, new, 1)
    nbformat.write(notebook, target)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Every assignment built by otter assign, into one folder."""
    folder = tmp_path_factory.mktemp("assignments")
    for chapter in CHAPTERS:
        build(chapter, folder, run_tests=False)  # grading the solution below is that test
    return folder


@pytest.fixture(scope="module")
def grades(built) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """Each assignment's three submissions graded, two at a time."""
    folder, jobs = built, {}
    for chapter in CHAPTERS:
        autograder = folder / chapter / "autograder" / f"{chapter}-autograder.zip"
        submissions = folder / "submissions" / chapter
        submissions.mkdir(parents=True)
        solution = folder / chapter / "autograder" / f"{chapter}.ipynb"
        for kind in KINDS:
            (submissions / kind).mkdir()
        (submissions / "solution" / solution.name).write_bytes(solution.read_bytes())
        (submissions / "student" / solution.name).write_bytes((folder / chapter / "student" / solution.name).read_bytes())
        with_mistakes(solution, WRONG_ANSWERS[chapter][0], submissions / "wrong" / solution.name)
        for kind in KINDS:
            jobs[chapter, kind] = (submissions / kind / solution.name, autograder)
    # otter.api.grade_submission (what `otter run` calls) changes directory, so the two graders are two
    # processes, each importing otter once; spawned, not forked from this process and its torch threads
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(grade, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def test_every_course_chapter_has_an_assignment():
    assert list(CHAPTERS) == read_course_chapters()
    for chapter in CHAPTERS:
        assert master_path(chapter).is_file()


def test_unknown_chapter_is_refused():
    with pytest.raises(ValueError, match="chapter must be one of concepts.*got 'transformers'"):
        master_path("transformers")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_notebook_has_no_solution_and_no_hidden_test(built, chapter):
    student = (built / chapter / "student" / f"{chapter}.ipynb").read_text()  # cells and metadata, as JSON
    cells = "\n".join(cell.source for cell in nbformat.reads(student, as_version=4).cells if cell.cell_type == "code")
    for solution_code, _ in WRONG_ANSWERS[chapter][0]:
        assert solution_code.strip() not in cells
    hidden = re.findall(r'hidden: true\n""" # END TEST CONFIG\ndef (\w+)\(', master_path(chapter).read_text())
    assert hidden, "every assignment has hidden tests"
    with zipfile.ZipFile(built / chapter / "autograder" / f"{chapter}-autograder.zip") as autograder:
        tests = "".join(autograder.read(name).decode() for name in autograder.namelist() if name.startswith("tests/"))
    for name in hidden:
        assert name not in student and f"def {name}(" in tests, f"{name} is in the autograder only"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_scores_full_marks(grades, chapter):
    scores = grades[chapter, "solution"]
    assert set(scores) == set(WRONG_ANSWERS[chapter][1]), "every question is graded"
    for question, (score, possible) in scores.items():
        assert possible > 0 and score == possible, f"{question}: {score} / {possible}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_untouched_student_notebook_scores_zero(grades, chapter):
    scores = grades[chapter, "student"]
    assert set(scores) == set(WRONG_ANSWERS[chapter][1]), "the grader graded every question"
    assert {question: score for question, (score, _) in scores.items()} == dict.fromkeys(scores, 0)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_mistake_loses_its_points(grades, chapter):
    scores = grades[chapter, "wrong"]
    assert {question: score for question, (score, _) in scores.items()} == WRONG_ANSWERS[chapter][1]
    for question, expected in WRONG_ANSWERS[chapter][1].items():
        assert expected < grades[chapter, "solution"][question][0], f"{question}: the mistake must cost points"
