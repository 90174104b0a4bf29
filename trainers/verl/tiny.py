"""Tiny random-weight vision-language checkpoints, built offline, for smoke runs and tests.

``codedance train --smoke`` and the trainer's tests need a real vision-language
checkpoint that ``AutoProcessor`` and ``AutoModelForImageTextToText`` load from a
folder, but nothing may come from the Hugging Face hub. :func:`build_tiny_qwen2_5_vl`
and :func:`build_tiny_qwen3_vl` make one from configs in code: a byte-level BPE
tokenizer trained in-process on a few sentences with Qwen's special tokens, a
Qwen2-VL chat template, a Qwen2-VL image processor with small pixel bounds, and a
1-layer model with a 1-block vision tower, saved with ``save_pretrained``, in well
under a second once torch is imported.

It works with transformers 4.51 and 5.x (Qwen3-VL needs 4.57 or later). From 4.52 on,
the processors also need a video processor, and transformers' video processors need
torchvision; before that, images are all they handle.

The weights are random, so by default the text they write is noise; two properties
make tests deterministic: the weights come from a fixed seed, and the output rows of
the special tokens are zero, so greedy decoding never picks ``<|im_end|>`` and always
runs to ``max_new_tokens`` (sampling still can end early).

``primed=True`` instead makes a policy that plays varied trajectories, which a smoke
training step needs (a random policy writes noise, every rollout of a group scores the
same, and GRPO has no gradient). Each of :data:`PRIMER_RESPONSES`, one assistant turn
in the ``codedance`` protocol's format (code that runs, code that fails, code that
shows an image, an answer), becomes one token of the vocabulary, and the weights are
set, not trained, so that sampling picks among those turns and ``<|im_end|>``: every
token embedding carries a large constant in dimension 0, which the final norm turns
into a constant feature, and the output rows use it as a bias (-24 for every other
token), and a primer token's own feature makes ``<|im_end|>`` likely after it (see
:func:`_prime`): a turn is one or more primer turns, each about equally likely,
whatever the context. It is built in under a second, like the plain model.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "CHAT_TEMPLATE",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "PRIMER_RESPONSES",
    "SPECIAL_TOKENS",
    "build_tiny",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
]

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's template, shortened: no default system prompt, images and videos as
# <|vision_start|><pad><|vision_end|> where they stand among the text parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "How many red circles are in the image? Count them with Python.",
    "<code>print(image.size)</code> <answer>42</answer>",
    "def crop(image, box): return image.crop(box)",
    "import numpy as np\nimport cv2\nresult = np.array(image).mean()",
    "The answer is 3.14, the area of the triangle is 12 square units.",
]

# Image pixel bounds: 2x2 to 4x4 merged patches of 28 px, so 4 to 16 image tokens.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 112 * 112


#: Qwen3-VL's patches are 16 px (32 px per merged token): 2x2 to 4x4 merged patches too.
QWEN3_MIN_PIXELS = 64 * 64
QWEN3_MAX_PIXELS = 128 * 128

#: One assistant turn each, in the ``codedance`` protocol's format (see the module docs).
PRIMER_RESPONSES = (
    "<code>\n```python\nprint(input_image.size)\n```\n</code>",
    "<code>\n```python\nprint(1 / 0)\n```\n</code>",
    "<code>\n```python\ninput_image.show()\n```\n</code>",
    "<answer>3</answer>",
)


def build_tiny_qwen2_5_vl(
    path: Path, *, seed: int = 0, primed: bool = False, corpus: Sequence[str] = ()
) -> Path:
    """Save a tiny random Qwen2.5-VL model, its processor and chat template to ``path``.

    ``corpus``: more text for the tokenizer to learn (a bigger vocabulary), so that
    long prompts, such as a system prompt documenting every tool, stay short in tokens.
    """
    Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor = _hf(
        "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"
    )

    tokenizer = _tokenizer(primed, corpus)
    processor = Qwen2_5_VLProcessor(
        image_processor=_image_processor(),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        **_video_processor(Qwen2_5_VLProcessor),
    )
    config = _model_config(tokenizer)
    return _save(path, processor, Qwen2_5_VLForConditionalGeneration, config, seed, primed)


def build_tiny_qwen3_vl(
    path: Path, *, seed: int = 0, primed: bool = False, corpus: Sequence[str] = ()
) -> Path:
    """Save a tiny random Qwen3-VL model (deepstack, interleaved mrope), processor, template."""
    Qwen2VLImageProcessor, Qwen3VLForConditionalGeneration, Qwen3VLProcessor = _hf(
        "Qwen2VLImageProcessor", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor"
    )

    tokenizer = _tokenizer(primed, corpus)
    bounds = {"min_pixels": QWEN3_MIN_PIXELS, "max_pixels": QWEN3_MAX_PIXELS}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, **bounds),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        **_qwen3_video_processor(bounds),
    )
    config = _qwen3_config(tokenizer)
    return _save(path, processor, Qwen3VLForConditionalGeneration, config, seed, primed)


#: The architectures :func:`build_tiny` makes, by Hugging Face ``model_type``.
ARCHITECTURES = {"qwen2_5_vl": build_tiny_qwen2_5_vl, "qwen3_vl": build_tiny_qwen3_vl}


def build_tiny(
    path: Path,
    model_type: str = "qwen2_5_vl",
    *,
    primed: bool = False,
    corpus: Sequence[str] = (),
) -> Path:
    """A tiny random checkpoint of ``model_type`` (a key of :data:`ARCHITECTURES`)."""
    from codedance.core.errors import ConfigError

    if model_type not in ARCHITECTURES:
        raise ConfigError(
            f"no tiny model for architecture {model_type!r}; codedance builds "
            f"{', '.join(sorted(ARCHITECTURES))}. Fix: smoke-test with one of those."
        )
    return ARCHITECTURES[model_type](path, primed=primed, corpus=corpus)


def _save(
    path: Path, processor: Any, model_class: Any, config: Any, seed: int, primed: bool
) -> Path:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = processor.tokenizer
    torch.manual_seed(seed)
    model = model_class(config)
    if primed:
        _prime(model, tokenizer)
    else:
        _silence_special_tokens(model, tokenizer)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _hf(*names: str) -> tuple[Any, ...]:
    """transformers classes, untyped (their stubs vary between releases)."""
    transformers = importlib.import_module("transformers")
    return tuple(getattr(transformers, name) for name in names)


def _tokenizer(primed: bool = False, corpus: Sequence[str] = ()) -> Any:
    """A byte-level BPE trained on a few sentences: it encodes any text, no <unk>.

    ``primed``: each of :data:`PRIMER_RESPONSES` is one more (ordinary) token.
    """
    tokenizers: Any = importlib.import_module("tokenizers")
    Tokenizer, decoders, models = tokenizers.Tokenizer, tokenizers.decoders, tokenizers.models
    pre_tokenizers, trainers = tokenizers.pre_tokenizers, tokenizers.trainers
    (Qwen2TokenizerFast,) = _hf("Qwen2TokenizerFast")

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400 + (1600 if corpus else 0),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([*_CORPUS, *corpus], trainer=trainer)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=core,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=4096,
    )
    if primed:
        tokenizer.add_tokens(list(PRIMER_RESPONSES))
    return tokenizer


def _image_processor() -> Any:
    (Qwen2VLImageProcessor,) = _hf("Qwen2VLImageProcessor")

    return Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


def _video_processor(processor_class: type) -> dict[str, Any]:
    """Since transformers 4.52 the processor needs a video processor (which needs torchvision)."""
    import inspect

    if "video_processor" not in inspect.signature(processor_class).parameters:
        return {}
    (Qwen2VLVideoProcessor,) = _hf("Qwen2VLVideoProcessor")

    return {"video_processor": Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)}


def _model_config(tokenizer: Any) -> Any:
    """1 text layer (hidden 64, head dim 32) and 1 vision block (head dim 32).

    The text settings are passed flat, as Qwen's hub configs are, which both
    transformers 4.x and 5.x accept. ``mrope_section`` splits the text head's 16
    rotary frequencies over time, height and width: it must sum to head_dim / 2.
    """
    (Qwen2_5_VLConfig,) = _hf("Qwen2_5_VLConfig")

    ids = tokenizer.convert_tokens_to_ids
    vision = {
        "depth": 1,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "out_hidden_size": 64,
        "fullatt_block_indexes": [0],
        "window_size": 112,
    }
    return Qwen2_5_VLConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        max_window_layers=1,
        rope_theta=1e6,
        rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def _qwen3_video_processor(bounds: dict[str, int]) -> dict[str, Any]:
    (Qwen3VLVideoProcessor,) = _hf("Qwen3VLVideoProcessor")

    return {"video_processor": Qwen3VLVideoProcessor(patch_size=16, **bounds)}


def _qwen3_config(tokenizer: Any) -> Any:
    """Qwen3-VL at the same tiny size: 1 text layer, 1 vision block feeding deepstack.

    ``mrope_section`` (interleaved in Qwen3-VL) splits the 16 rotary frequencies of a
    32-dim head; the vision tower's position table is a 16x16 grid of patches.
    """
    (Qwen3VLConfig,) = _hf("Qwen3VLConfig")

    ids = tokenizer.convert_tokens_to_ids
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": [8, 4, 4],
            "mrope_interleaved": True,
        },
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision = {
        "depth": 1,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "out_hidden_size": 64,
        "patch_size": 16,
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [0],
    }
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


_LARGE = 50.0  # an embedding entry this large dominates the RMS: the final norm keeps it
_UNLIKELY = -3.0  # an output weight on a large feature (~ +6 after the norm): logit ~ -18
_END_FIRST = -0.5  # <|im_end|> as a turn's first token: logit ~ -4 (an empty turn is rare)
_END_AFTER = 0.75  # after a primer token: logit ~ +1.4, so about one turn in two ends there


def _prime(model: Any, tokenizer: Any) -> None:
    """Set the weights so that a turn is primer tokens, then <|im_end|> (module docs).

    Every embedding has :data:`_LARGE` in dimension 0 (a bias feature); primer token k
    also in dimension 1 + k (an "a turn was written" feature). Output rows: every token
    but the primer turns is unlikely on the bias feature; after a primer token,
    ``<|im_end|>`` is as likely as another primer token, so turns vary in length.
    """
    import torch

    turns = tokenizer.convert_tokens_to_ids(list(PRIMER_RESPONSES))
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    written = list(range(1, 1 + len(turns)))
    embeddings = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        embeddings[:, 0] = _LARGE
        for dim, token in zip(written, turns, strict=True):
            embeddings[token, dim] = _LARGE
        head[:, 0] = _UNLIKELY
        head[turns, 0] = 0.0
        for token in turns:
            head[token, written] = 0.0
        head[end, 0] = _END_FIRST
        head[end, written] = _END_AFTER


def _silence_special_tokens(model: Any, tokenizer: Any) -> None:
    """Zero the output rows of the special tokens: greedy decoding then never ends early."""
    import torch

    special = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    with torch.no_grad():
        model.lm_head.weight[special] = 0.0
