"""Online spike sorting: noise estimation, threshold detection, calibration clustering -> templates,
online template matching, template tracking."""
