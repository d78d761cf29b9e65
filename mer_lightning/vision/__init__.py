"""Image processing for preprocessing: face alignment (dlib, optional) and optical flow."""
