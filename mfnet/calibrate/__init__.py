"""Detector-calibrated landmark embeddings (:mod:`.embedding`: renders of the model, detections) and
the installation and loading of head models with them (:mod:`.install`: ``install_ict``,
``add_model``, ``calibrate_model``, ``model_path``, ``load_model``).

Above detection and rendering in the layer order. Import from the submodules (this package stays
light: nothing heavy loads until a submodule is imported).
"""
