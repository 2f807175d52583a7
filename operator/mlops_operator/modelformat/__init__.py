"""The model format: what a stored model version holds and how it is read and checked — the skops file,
metadata.json, the dataset profile, calibration.json and the MANIFEST.json of their sha256 (`files`),
and the calibration of the label-free accuracy estimate (`calibration`). The trainer writes it, the
server reads it; neither depends on the other."""
