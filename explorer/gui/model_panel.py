"""The "Image and model" dock: the image in use (open, samples) and the model choice (spec, weights, labels,
device, engine, trust). It only collects the choice; the window loads it."""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer import resources
from explorer.core.model_sources import MODEL_FILE_SUFFIXES
from explorer.core.types import EMBEDDED_MODELS
from explorer.session.model_choice import ModelChoice, normalisation_text, parse_normalisation

# every model file suffix the loader reads (core/model_sources.py)
MODEL_FILE_FILTER = f"Models ({' '.join('*' + x for x in MODEL_FILE_SUFFIXES)});;All files (*)"
MODEL_SPECS = [*EMBEDDED_MODELS, "torchvision:resnet50", "torchvision:vgg16", "timm:resnet18",
               "timm:vit_tiny_patch16_224"]


class ModelPanel(QWidget):
    """The image in use and the model choice (spec, weights, labels, device)."""

    load_requested = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image_label = QLabel("no image")
        self.image_label.setWordWrap(True)
        self.open_btn = QPushButton("Open image…")
        self.sample = QComboBox()
        self.sample.addItem("sample…")
        self.sample.addItems(list(resources.SAMPLES))
        self.spec = QComboBox()
        self.spec.setEditable(True)
        self.spec.addItems(MODEL_SPECS)
        self.spec.setToolTip("efficientnet_lite0 (embedded), torchvision:NAME, timm:NAME, hf:FOLDER (a Hugging Face "
                             "save_pretrained folder, 'Folder…') or hf:OWNER/NAME (cached), or a .pt/.onnx file")
        self.hf_btn = QPushButton("Folder…")
        self.hf_btn.setToolTip("choose a Hugging Face save_pretrained folder (loaded as hf:FOLDER, offline)")
        self.activation = QComboBox()
        self.activation.addItems(["auto", "softmax", "sigmoid", "none"])
        self.activation.setToolTip("how logits become scores: softmax (one class), sigmoid (independent labels, or "
                                   "a binary model's one logit), none (raw); auto: sigmoid for one output, a Hugging "
                                   "Face model's problem_type, else softmax")
        self.output = QLineEdit()
        self.output.setPlaceholderText("scores in a tuple/dict output (default)")
        self.output.setToolTip("the index (tuple) or key (dict) of the class scores when the model returns several "
                               "things; default: element 0, or 'logits'")
        self.normalise = QLineEdit()
        self.normalise.setPlaceholderText("the model's own (e.g. 0.5 / 0.5)")
        self.normalise.setToolTip("MEAN / STD the model was trained with, on pixels in [0, 1], one value or three "
                                  "(R, G, B) each: 0.5 / 0.5 for weights that expect [-1, 1]. Empty: what the model's"
                                  " source says; for a model file, which records none, ImageNet's")
        self.weights = QLineEdit()
        self.weights.setPlaceholderText("weights file (optional)")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("labels file (optional)")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.engine = QComboBox()
        self.engine.addItems(["auto", "torch", "onnxruntime"])
        self.engine.setToolTip("what runs score-only forwards (RISE, occlusion, LIME, Score-CAM's masks, evaluation "
                               "curves): auto exports the model to ONNX once, checks it against torch and uses the "
                               "faster; gradients and layer hooks always run on torch")
        self.trust = QCheckBox("trust pickled objects in the file")
        self.trust.setToolTip("allow loading a whole pickled model; pickles can run code: only for files you trust. "
                              "Asks you to confirm the file, applies to this one load, and is never saved")
        self.load_btn = QPushButton("Load model")
        self.browse_btn = QPushButton("File…")
        self.status = QLabel("loading…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: palette(mid);")
        row = QHBoxLayout()
        row.addWidget(self.open_btn)
        row.addWidget(self.sample)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        spec_row = QHBoxLayout()
        spec_row.addWidget(self.spec, 1)
        spec_row.addWidget(self.browse_btn)
        spec_row.addWidget(self.hf_btn)
        form.addRow("model", spec_row)
        form.addRow("weights", self._with_browse(self.weights, "Weights file",
                                                 "Weights (*.pt *.pth *.bin *.safetensors);;All files (*)"))
        form.addRow("labels", self._with_browse(self.labels, "Labels file", "Labels (*.txt *.json);;All files (*)"))
        form.addRow("device", self.device)
        form.addRow("activation", self.activation)
        form.addRow("output", self.output)
        form.addRow("normalise", self.normalise)
        form.addRow("engine", self.engine)
        form.addRow("", self.trust)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.image_label)
        lay.addLayout(row)
        lay.addLayout(form)
        lay.addWidget(self.load_btn)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.load_btn.clicked.connect(self._request_load)
        self.browse_btn.clicked.connect(self._browse)
        self.hf_btn.clicked.connect(self._browse_hf)

    def _with_browse(self, edit: QLineEdit, title: str, filt: str) -> QWidget:
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        btn = QPushButton("…")
        btn.setFixedWidth(30)
        btn.setToolTip(f"choose a {title.lower()}")

        def pick():
            path, _ = QFileDialog.getOpenFileName(self, title, "", filt)
            if path:
                edit.setText(path)
        btn.clicked.connect(pick)
        row.addWidget(edit, 1)
        row.addWidget(btn)
        return host

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", MODEL_FILE_FILTER)
        if path:
            self.spec.setCurrentText(path)

    def _browse_hf(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face model folder (save_pretrained)")
        if path:
            self.spec.setCurrentText(f"hf:{path}")

    def _request_load(self) -> None:
        try:
            choice = self.choice()
        except ValueError as exc:  # nothing is loaded: the model in use stays
            # in the error colour: the status line is otherwise faint grey, and this says nothing happened
            self.status.setText(f"<span style='color:#b00020'>not loaded: {html.escape(str(exc))}</span>")
            return
        self.load_requested.emit(choice)

    def choice(self) -> ModelChoice:
        """The choice the panel shows; a ValueError when its normalisation cannot be read."""
        dev, act, engine = self.device.currentText(), self.activation.currentText(), self.engine.currentText()
        mean, std = parse_normalisation(self.normalise.text())
        return ModelChoice(spec=self.spec.currentText().strip() or None, weights=self.weights.text().strip() or None,
                           labels=self.labels.text().strip() or None, device=None if dev == "auto" else dev,
                           activation=None if act == "auto" else act, output=self.output.text().strip() or None,
                           engine=None if engine == "auto" else engine, mean=mean, std=std)

    def show_choice(self, c: ModelChoice) -> None:
        self.spec.setCurrentText(c.label)
        self.weights.setText(c.weights or "")
        self.labels.setText(c.labels or "")
        self.device.setCurrentText(c.device or "auto")
        self.activation.setCurrentText(c.activation or "auto")
        self.output.setText(c.output or "")
        self.engine.setCurrentText(c.engine or "auto")
        self.normalise.setText(normalisation_text(c.mean, c.std))
        self.trust.setChecked(False)  # trust is one deliberate act per load, never restored from a choice

