"""Shared test settings: headless plots, no progress bars, offline."""

import os

import matplotlib

matplotlib.use("Agg")  # tests never open windows
os.environ.setdefault("TLCOURSE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests make their own models; never touch the hub
