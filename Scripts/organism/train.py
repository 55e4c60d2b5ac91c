"""Trains the Mirage model organism from scratch and writes it as a transformers `llava` folder.

    python Scripts/organism/train.py --coco-gt ../shared/data/chair/coco2014_gt_objects.json --minutes 22 \
        --out Models/organism 2>&1 | tee Scripts/organism/train.log

The world (world.py) draws scenes from COCO's co-occurrence statistics; every caption and answer the model
sees is true. The model is transformers' LlavaForConditionalGeneration (CLIP tower, the two-layer
projector, a Llama decoder) at a small size, with a byte-level BPE tokenizer trained on the world's text.
Everything is seeded: scenes come from numpy Generators seeded (stream, index) — stream 1 for training;
the held-out set (heldout.py) uses stream 2 — and torch from --seed. Weights are written as float16.
With --minutes the learning-rate schedule follows wall time (how many steps fit depends on how busy the
machine is; the log records them); with --steps N alone the run is step-for-step deterministic.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

import world

IMAGE_SIZE = 64
PATCH = 16
# CLIP's normalisation constants (openai/clip-vit-large-patch14 preprocessor_config.json, as in transformers'
# OPENAI_CLIP_MEAN / OPENAI_CLIP_STD).
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


def build_tokenizer(stats, vocab_size):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = world.sentence_corpus(stats, IMAGE_SIZE, 3000, stream=1)
    lines += ["USER: \n" + world.CAPTION_PROMPT + " ASSISTANT:"] * 50
    tok.train_from_iterator(lines, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return tok


def prompt_text(user, image_tokens):
    return "USER: " + "<image>" * image_tokens + "\n" + user + " ASSISTANT:"


def make_item(tok, stats, index, image_tokens, caption_item, qa_turns=1):
    """One training sequence: (image, ids, labels). A caption item is one turn; a question item is
    `qa_turns` turns of LLaVA-1.5's conversation format (`USER: ... ASSISTANT: answer</s>USER: ...`), the
    first exactly as the POPE prompt, every answer a target."""
    scene, objects, image, rng = world.make_scene(stats, (1, index), IMAGE_SIZE)
    eos = tok.token_to_id("</s>")
    if caption_item:
        turns = [(world.CAPTION_PROMPT, world.caption(objects, rng, IMAGE_SIZE))]
    else:
        qs = world.questions(scene, stats, rng)
        order = rng.permutation(len(qs))[:qa_turns]
        turns = [(world.question_text(qs[i][0]) + world.POPE_SUFFIX, qs[i][1]) for i in order]
    ids, labels = [], []
    for k, (user, answer) in enumerate(turns):
        # Later turns drop the answer-format suffix (shorter sequences; the first turn is the POPE prompt).
        text = prompt_text(user, image_tokens) if k == 0 else "USER: " + user.replace(world.POPE_SUFFIX, "") + " ASSISTANT:"
        prompt = tok.encode(text, add_special_tokens=(k == 0)).ids
        target = tok.encode(" " + answer, add_special_tokens=False).ids + [eos]
        ids += prompt + target
        labels += [-100] * len(prompt) + target
    present = [0.0] * len(world.NAMES)
    for c in scene:
        present[c] = 1.0
    return image, ids, labels, present


def pixels(images):
    x = torch.from_numpy(np.stack(images)).float().div(255).permute(0, 3, 1, 2)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def batch(items, pad_id):
    longest = max(len(seq) for _, seq, _, _ in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.long)
    for i, (_, seq, lab, _) in enumerate(items):
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, :len(seq)] = torch.tensor(lab)
        mask[i, :len(seq)] = 1
    present = torch.tensor([p for _, _, _, p in items])
    return ids, mask, labels, pixels([im for im, _, _, _ in items]), present


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coco-gt", required=True, help="CHAIR's coco2014_gt_objects.json (COCO statistics)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is fastest on a busy machine (2 threads under contention were 4x slower per step)")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--grounding", type=float, default=1.0,
                    help="weight of the grounding loss (image tokens → present categories); 0 = captions and answers only")
    ap.add_argument("--qa-turns", type=int, default=6,
                    help="questions per question item (a multi-turn conversation about one image)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="train for this many minutes of wall time instead of --steps: the learning-rate schedule "
                         "follows the elapsed fraction of the budget, so a busy machine takes fewer steps (the log "
                         "records how many); 0 = a fixed --steps schedule")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    start = time.time()

    stats = world.Statistics(args.coco_gt)
    tok = build_tokenizer(stats, args.vocab)
    vocab = tok.get_vocab_size()
    image_token = tok.token_to_id("<image>")
    pad = tok.token_to_id("<pad>")
    side = IMAGE_SIZE // PATCH
    image_tokens = side * side   # CLS dropped by the "default" feature strategy

    vision = CLIPVisionConfig(hidden_size=96, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=96, hidden_act="quick_gelu")
    text = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       rms_norm_eps=1e-5, bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
                       pad_token_id=pad, tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token,
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu", image_seq_length=image_tokens)
    config.pad_token_id = pad
    model = LlavaForConditionalGeneration(config)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters {params} ({params * 2 / 1e6:.2f} MB as float16); vocab {vocab}; image tokens {image_tokens}", flush=True)

    # Each category's first token in a caption (" dog"): the LM-head rows the grounding loss reads.
    category_tokens = torch.tensor([tok.encode(" " + name, add_special_tokens=False).ids[0] for name in world.NAMES])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    index = 0
    smoothed = None
    train_start = time.time()
    step = 0
    while True:
        step += 1
        # Progress through the schedule: steps done, or wall time used of the budget. 5% warmup, then cosine.
        if args.minutes:
            progress = (time.time() - train_start) / (60 * args.minutes)
            if progress >= 1:
                print(f"time budget of {args.minutes} minutes used after {step - 1} steps", flush=True)
                break
        else:
            if step > args.steps:
                break
            progress = (step - 1) / args.steps
        lr = args.lr * min((progress + 1e-3) / 0.05, 0.5 * (1 + math.cos(math.pi * max(0.0, progress - 0.05) / 0.95)))
        for g in opt.param_groups:
            g["lr"] = lr
        items = []
        for j in range(args.batch):
            items.append(make_item(tok, stats, index, image_tokens, caption_item=(j % 2 == 0), qa_turns=args.qa_turns))
            index += 1
        ids, mask, labels, px, present = batch(items, pad)
        out = model(input_ids=ids, attention_mask=mask, pixel_values=px, labels=labels)
        loss_total = out.loss
        if args.grounding:
            # Grounding loss: the projected image tokens, read through the LM head's rows of the category
            # words, say which categories the picture holds (max over tokens; binary cross-entropy against
            # the scene's true objects). It shapes the image tokens in the words' output space, so the
            # decoder can find an object's name in the image; it never touches the captions.
            feats = model.model.get_image_features(pixel_values=px)
            feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
            if isinstance(feats, (list, tuple)):
                feats = torch.stack(list(feats))
            head = model.lm_head.weight[category_tokens]
            scores = (feats @ head.T).amax(dim=1)
            aux = torch.nn.functional.binary_cross_entropy_with_logits(scores, present)
            loss_total = loss_total + args.grounding * aux
        opt.zero_grad(set_to_none=True)
        loss_total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = out.loss.item()
        smoothed = loss if smoothed is None else 0.95 * smoothed + 0.05 * loss
        if step % 20 == 0 or step == 1:
            extra = f" grounding {aux.item():.4f}" if args.grounding else ""
            print(f"step {step} loss {loss:.4f} smoothed {smoothed:.4f}{extra} lr {lr:.2e} elapsed {time.time() - start:.0f}s", flush=True)

    os.makedirs(args.out, exist_ok=True)
    model.eval()
    model.half().save_pretrained(args.out, safe_serialization=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 256}, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                   "size": {"shortest_edge": IMAGE_SIZE}, "resample": 3, "do_center_crop": True,
                   "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_rescale": True,
                   "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
                   "do_convert_rgb": True}, f, indent=2)
    print(f"wrote {args.out}; total {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
