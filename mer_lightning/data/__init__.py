"""Datasets: readers, label schemes, subject splits, frame selection and DataModules."""
