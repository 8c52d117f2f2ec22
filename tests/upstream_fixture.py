"""A stand-in for a checkout of the official UnifiedReward repository: the same file layout and the
same code shapes around the prompt (an inline f-string, implicit concatenation in parentheses,
backslash continuations, a text variable, an undedented triple-quoted f-string, the LLaVA scripts'
``'<image>\\n' * len(images) + f'...'``, one script that is not valid Python), in this project's own
words. ``TEXTS`` holds each script's prompt as a Python format string over the script's variables:
what the official script sends, the ground truth the importer and the parity test are checked
against."""

from __future__ import annotations

from pathlib import Path

GEN = "Text Caption: [{prompt}]"
TEXTS: dict[str, str] = {
    # 1.x, Qwen2.5-VL, HF scripts
    "inference_qwen/image_generation/qwen_pair_rank_image_generation.py": "Two pictures were drawn from one caption. Say which one follows it better and looks better. "
    'Finish with "Image 1 is better.", "Image 2 is better." or "Both images are equally good."\n' + GEN,
    "inference_qwen/image_generation/qwen_point_score_image_generation.py": "Check each thing the caption asks for, one per line, then end with 'Final Score: N' from 1 to 5.\n"
    + GEN,
    "inference_qwen/image_generation/qwen_point_score_ACS_image_generation.py": "Rate the picture three ways.\nAlignment Score (1-5): X\nCoherence Score (1-5): Y\nStyle Score (1-5): Z\n"
    "Keep to this format.\n" + GEN,
    "inference_qwen/image_understanding/qwen_pair_rank_image_understanding.py": "Look at the picture and the question, then weigh the two replies.\nSay 'Answer 1 is better' or "
    "'Answer 2 is better'.\nQuestion: {Query}\nAnswer 1: {R1}\nAnswer 2: {R2}\n",
    "inference_qwen/image_understanding/qwen_point_score_image_understanding.py": "\n            Grade the reply for the picture and question.  \n            Give 'Final Score:' from 0 to 100."
    "  \n            Question: [{Query}]  \n            Response: [{Response}]\n            ",
    "inference_qwen/video_generation/qwen_pair_rank_video_generation.py": "Two clips were made from one caption.\nCompare how well each follows it and how smooth it is.\n"
    "Answer 'Video 1 is better,' 'Video 2 is better,' or 'Both videos are equally good.'\n" + GEN + "\n",
    "inference_qwen/video_generation/qwen_point_score_video_generation.py": "Rate the clip on quality, motion and faithfulness, then 'Final Score:' from 1 to 10.\nText Prompt: [{prompt}]",
    "inference_qwen/video_understanding/qwen_pair_rank_video_understanding.py": "Watch the clip and compare the replies.\nQuestion: {Query}\nAnswer 1: {R1}\nAnswer 2: {R2}\n"
    "End with 'Overall Judgment: Answer 1 is better than Answer 2.' or the reverse; no ties.",
    "inference_qwen/video_understanding/qwen_point_score_video_understanding.py": "Grade the reply to the question about the clip with 'Final Score:' from 1 to 5.\n"
    "Question: [{Query}]\nResponse: [{Response}]",
    # 1.x, LLaVA-OneVision scripts
    "inference_llava/image_generation/pair_rank_image_generation.py": "<image>\n <image>\nCompare the two pictures for the caption. Answer 'Image 1 is better than Image 2.' or "
    "the reverse, or 'Both images are equally good.'\n" + GEN,
    "inference_llava/image_generation/point_score_image_generation.py": "<image>\nList the caption's parts, mark each, and end with 'Final Score:' 1 to 5.\n"
    + GEN,
    "inference_llava/image_generation/point_score_ACS_image_generation.py": "<image>\nRate it.\nAlignment Score (1-5): X\nCoherence Score (1-5): Y\nStyle Score (1-5): Z\n"
    + GEN,
    "inference_llava/image_understanding/pair_rank_image_understanding.py": "<image>\nWhich reply answers better? End with 'Overall Judgment: Answer X is better'.\n"
    "Question: [{Query}]\nThe first response: [{R1}]\nThe second response: [{R2}]",
    "inference_llava/image_understanding/point_score_image_understanding.py": "<image>\nGrade the reply from 0 to 100 after 'Final Score:'.\nQuestion: [{Query}]\nResponse: [{Response}]",
    "inference_llava/video_generation/pair_rank_video_generation.py": "<image>\nCompare the two clips for the caption: 'Video 1 is better than Video 2.' or the reverse, or "
    "'Both videos are equally good.'\n" + GEN,
    "inference_llava/video_generation/point_score_video_generation.py": "<image>\nRate the clip, then 'Final Score:' from 1 to 10.\n"
    + GEN,
    "inference_llava/video_understanding/point_score_video_understanding.py": "<image>\nGrade the reply to the clip's question, 'Final Score:' 1 to 5.\nQuestion: [{Query}]\n"
    "Response: [{Response}]",
    # 2.0, vLLM client scripts
    "inference_qwen/UnifiedReward-2.0-inference/pair_score_image_generation.py": "Give each picture a share of each score; the two shares sum to 1.\n\nAlignment Score:\n Image 1: X\n"
    " Image 2: Y\n\nCoherence Score:\n Image 1: X\n Image 2: Y\n\nStyle Score:\n Image 1: X\n Image 2: Y\n\n" + GEN,
    "inference_qwen/UnifiedReward-2.0-inference/pair_score_video_generation.py": "Give each clip a share of each score; the two shares sum to 1.\n\nAlignment Score:\n Video 1: X\n"
    " Video 2: Y\n\nCoherence Score:\n Video 1: X\n Video 2: Y\n\nStyle Score:\n Video 1: X\n Video 2: Y\n\n" + GEN,
    "inference_qwen/UnifiedReward-2.0-inference/point_score_ACS_image_generation.py": "Score the picture from 1 to 5, decimals allowed.\nAlignment Score (1-5): X\nCoherence Score (1-5): Y\n"
    "Style Score (1-5): Z\n" + GEN,
    "inference_qwen/UnifiedReward-2.0-inference/point_score_APS_video_generation.py": "Score the clip from 1 to 5, decimals allowed.\nAlignment Score (1-5): X\nPhysics Score (1-5): Y\n"
    "Style Score (1-5): Z\n" + GEN,
    # Think, Qwen2.5-VL HF scripts
    "UnifiedReward-Think/inference_qwen/image_generation/qwen_infer_cot_image_generation.py": "Reason about both pictures inside <think></think>, then write <answer>Image 1 is better</answer> or "
    "<answer>Image 2 is better</answer>. " + GEN,
    "UnifiedReward-Think/inference_qwen/image_understanding/qwen_infer_cot_image_understanding.py": "Reason about the two replies inside <think></think>.\n\nThen answer <answer>Answer 1 is better</answer> "
    "or <answer>Answer 2 is better</answer>.\n\nQuestion: [{Query}]\nAnswer 1: [{R1}]\nAnswer 2: [{R2}]",
    "UnifiedReward-Think/inference_qwen/video_generation/qwen_infer_cot_video_generation.py": "Reason about both clips inside <think></think>, then <answer>Video 1 is better</answer> or "
    "<answer>Video 2 is better</answer>. " + GEN,
    "UnifiedReward-Think/inference_qwen/video_understanding/qwen_infer_cot_video_understanding.py": "Reason inside <think></think>, then <answer>Answer 1 is better</answer> or the other.\n"
    "Question: {Query}\nAnswer 1: {R1}\nAnswer 2: {R2}\n",
    # Think, Qwen3-VL vLLM client scripts
    "UnifiedReward-Think/inference_qwen/UnifiedReward-Think-qwen3-inference/qwen3_infer_cot_image_generation.py": "You compare two pictures for 「{prompt}」.\n        Score each dimension:\n            Image 1 (x/10) - why;"
    " \n            Image 2 (y/10) - why\n        Total score:\n        then <answer>Image 1 is better</answer> "
    "or the other.\n        ",
    "UnifiedReward-Think/inference_qwen/UnifiedReward-Think-qwen3-inference/qwen3_infer_cot_image_understanding.py": "You compare two replies.\n        Question: 「{Query}」\n        Answer 1: 「{R1}」\nAnswer 2: 「{R2}」\n"
    "        Reason in <think>, answer in <answer>.\n        ",
    "UnifiedReward-Think/inference_qwen/UnifiedReward-Think-qwen3-inference/qwen3_infer_cot_video_generation.py": "The first half of the frames is Video 1, the second half Video 2; the caption is 「{prompt}」.\n"
    "        Reason, then <answer>Video 1 is better</answer> or <answer>Video 2 is better</answer>.\n        ",
    "UnifiedReward-Think/inference_qwen/UnifiedReward-Think-qwen3-inference/qwen3_infer_cot_video_understanding.py": "Judge the replies to 「{Query}」 about the clip.\n- Answer 1: {R1}\n- Answer 2: {R2}\n"
    "Reason in <think>, answer in <answer>.",
}
BROKEN = "inference_llava/video_understanding/pair_rank_video_understanding.py"  # not valid Python upstream

# how each script writes its prompt (the shapes of the official scripts)
SHAPES = {
    "qwen_pair_rank_image_generation.py": "inline_fstring",
    "qwen_point_score_image_generation.py": "inline_fstring",
    "qwen_point_score_ACS_image_generation.py": "inline_concat",
    "qwen_pair_rank_image_understanding.py": "variable_concat",
    "qwen_point_score_image_understanding.py": "variable_triple",
    "qwen_pair_rank_video_generation.py": "inline_concat",
    "qwen_point_score_video_generation.py": "inline_fstring",
    "qwen_pair_rank_video_understanding.py": "inline_fstring",
    "qwen_point_score_video_understanding.py": "inline_fstring",
    "pair_rank_image_generation.py": "llava_fstring",
    "point_score_image_generation.py": "llava_fstring",
    "point_score_ACS_image_generation.py": "llava_concat",
    "pair_rank_image_understanding.py": "llava_fstring",
    "point_score_image_understanding.py": "llava_plus",
    "pair_rank_video_generation.py": "llava_times",
    "point_score_video_generation.py": "llava_times",
    "point_score_video_understanding.py": "llava_times",
    "pair_score_image_generation.py": "problem_concat",
    "pair_score_video_generation.py": "problem_concat",
    "point_score_ACS_image_generation.py@2.0": "problem_concat",
    "point_score_APS_video_generation.py": "problem_concat",
    "qwen_infer_cot_image_generation.py": "inline_fstring",
    "qwen_infer_cot_image_understanding.py": "variable_backslash",
    "qwen_infer_cot_video_generation.py": "inline_fstring",
    "qwen_infer_cot_video_understanding.py": "inline_backslash",
    "qwen3_infer_cot_image_generation.py": "problem_triple",
    "qwen3_infer_cot_image_understanding.py": "problem_fstring",
    "qwen3_infer_cot_video_generation.py": "problem_triple",
    "qwen3_infer_cot_video_understanding.py": "problem_fstring",
}
NAMES = ("prompt", "Query", "R1", "R2", "Response")


def official_text(path: str, **values: str) -> str:
    """What the official script at ``path`` sends as its text, for these variable values."""
    return TEXTS[path].format(**{n: values.get(n, "") for n in NAMES})


def _shape(path: str) -> str:
    name = Path(path).name
    return SHAPES.get(f"{name}@2.0" if "2.0" in path and f"{name}@2.0" in SHAPES else name)


def _lit(piece: str) -> str:
    """A Python string literal for ``piece``: an f-string when it holds a variable."""
    has_var = any("{" + n + "}" in piece for n in NAMES)
    return ("f" if has_var else "") + repr(piece)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [text]


def _source(path: str) -> str:
    text = TEXTS[path]
    shape = _shape(path)
    head = "from transformers import AutoProcessor\n\nprompt = ''\nQuery = ''\nR1 = ''\nR2 = ''\nResponse = ''\n\n"
    if shape.startswith("llava"):
        body = text.split("\n", 1)
        if shape == "llava_fstring":
            expr = _lit(text)
        elif shape == "llava_concat":
            expr = "(" + "\n    ".join(_lit(p) for p in _lines(text)) + ")"
        elif shape == "llava_plus":
            expr = "'<image>\\n' + " + _lit(body[1])
        else:  # llava_times
            expr = "'<image>\\n'*len(images) + " + _lit(body[1])
        return head + "images = []\n" + f"question = {expr}\nconv = conv_templates['qwen_1_5']\n"
    if shape == "inline_fstring":
        text_expr = _lit(text)
    elif shape == "inline_concat":
        text_expr = "(\n                " + "\n                ".join(_lit(p) for p in _lines(text)) + "\n            )"
    elif shape == "inline_backslash":
        text_expr = " \\\n                ".join(_lit(p) for p in _lines(text))
    elif shape == "variable_concat":
        text_expr = "prompt_text"
        head += "prompt_text = (\n    " + "\n    ".join(_lit(p) for p in _lines(text)) + "\n)\n"
    elif shape == "variable_backslash":
        text_expr = "prompt_text"
        head += "prompt_text = (" + " \\\n    ".join(_lit(p) for p in _lines(text)) + ")\n"
    elif shape == "variable_triple":
        text_expr = "prompt_text"
        head += 'prompt_text = f"""' + text + '"""\n'
    elif shape == "problem_concat":
        return (
            head + "problem = (\n    " + "\n    ".join(_lit(p) for p in _lines(text)) + "\n)\n"
            "evaluate_batch([{'problem': problem, 'images': images}], 'http://localhost:8080')\n"
        )
    elif shape == "problem_triple":
        return head + "problem = f'''" + text + "'''\nevaluate_batch([{'problem': problem, 'images': []}])\n"
    elif shape == "problem_fstring":
        return head + f"problem = {_lit(text)}\nevaluate_batch([{{'problem': problem, 'images': []}}])\n"
    else:  # pragma: no cover - every script has a shape
        raise AssertionError(path)
    kind = "video" if "video" in path else "image"
    n = 2 if "pair" in Path(path).name or "cot" in path and "understanding" not in path else 1
    parts = "".join(f'            {{"type": "{kind}", "{kind}": path_{i}}},\n' for i in range(n))
    return head + (
        'messages = [\n    {\n        "role": "user",\n        "content": [\n'
        + parts
        + f'            {{"type": "text", "text": {text_expr}}},\n        ]\n    }}\n]\n'
        "text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)\n"
    )


def write_tree(root: Path) -> Path:
    """Writes the stand-in checkout under ``root``; returns ``root``."""
    for path in TEXTS:
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(_source(path), encoding="utf-8")
    broken = root / BROKEN
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("question = f'the video's question {Query}'\n", encoding="utf-8")
    return root
