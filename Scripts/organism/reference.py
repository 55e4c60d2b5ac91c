"""Reference outputs of the trained organism for Mirage's parity tests, from transformers and tokenizers.

    python reference.py --model Models/organism --heldout Annotations/organism \
        --coco-gt ../shared/data/chair/coco2014_gt_objects.json \
        --out Tests/MirageModelsTests/Fixtures/organism/reference.json

Writes: the `tokenizers` library's ids for the held-out captions and questions and the demo prompts
(what Mirage's tokenizer must reproduce), and for two held-out images the prompt ids, selected logit
rows (float32 model from the float16 weights, pixel values straight from the PNG: the image is already
at the tower's size, so CLIP's resize and crop leave it unchanged) and 40 greedy tokens.
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import LlavaForConditionalGeneration

import train
import world


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--coco-gt", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    stats = world.Statistics(args.coco_gt)
    texts = [train.prompt_text(world.CAPTION_PROMPT, 1), train.prompt_text(world.question_text("dog") + world.POPE_SUFFIX, 3)]
    for i in range(60):
        scene, objects, _, rng = world.make_scene(stats, (2, i), train.IMAGE_SIZE, draw=False)
        texts.append(world.caption(objects, rng, train.IMAGE_SIZE))
        for name, answer in world.questions(scene, stats, rng):
            texts.append(world.question_text(name) + world.POPE_SUFFIX + " " + answer)
    texts += ["Is there a hair drier in the image?", "A zebra, two giraffes & 3 elephants!", "  spaces\tand\nlines  "]
    encodings = [{"text": t, "ids": tok.encode(t).ids} for t in texts]

    model = LlavaForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    vision = model.config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    cases = []
    for image_id, user in [(1, world.CAPTION_PROMPT), (2, world.question_text("person") + world.POPE_SUFFIX)]:
        name = f"COCO_val2014_{image_id:012d}.png"
        pixels = np.asarray(Image.open(os.path.join(args.heldout, "images", name)).convert("RGB"))
        px = train.pixels([pixels])
        ids = tok.encode(train.prompt_text(user, image_tokens)).ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), pixel_values=px).logits[0]
            rows = sorted({0, 1, 5, len(ids) - 3, len(ids) - 2, len(ids) - 1})
            generated = model.generate(input_ids=torch.tensor([ids]), pixel_values=px, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                       max_new_tokens=40, do_sample=False, num_beams=1)[0, len(ids):].tolist()
        cases.append({"image": name, "prompt": user, "input_ids": ids, "rows": rows,
                      "logits": [[round(float(v), 6) for v in logits[r]] for r in rows], "greedy": generated,
                      "greedy_text": tok.decode(generated)})
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "tokenizers": __import__("tokenizers").__version__,
                   "encodings": encodings, "cases": cases}, f)
    print(f"wrote {args.out}: {len(encodings)} encodings, {len(cases)} logit cases")
    for c in cases:
        print(c["image"], repr(c["greedy_text"]))


if __name__ == "__main__":
    main()
