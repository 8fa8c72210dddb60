"""Faces in pictures: where they are (detect.py: CenterFace run by OpenCV, no download), the rows of the
``faces`` table that keep the boxes, and the blur an export applies to its copy (boxes.py)."""
