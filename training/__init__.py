"""Offline training and evaluation of the risk model: data sets, the PyTorch trainer, metrics and reports."""
