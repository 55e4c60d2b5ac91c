"""Trains the Mirage model organism from scratch and writes it as a transformers `llava` folder.

    python Scripts/organism/train.py --coco-gt ../shared/data/chair/coco2014_gt_objects.json \
        --pretrain-tower-minutes 5 --minutes 38 --batch 16 --patch 16 --grounding-target patch \
        --content-weight 5 --tower-lr-scale 0.1 --threads 1 --snapshot-minutes 10 --out organism-run \
        2>&1 | tee Scripts/organism/train.log

(the shipped weights' recipe, docs/organism.md "Training", attempt 7, which shipped organism-run/snap-30).

The world (world.py) draws scenes from COCO's co-occurrence statistics; every caption and answer the model
sees is true. The model is transformers' LlavaForConditionalGeneration (CLIP tower, the two-layer
projector, a Llama decoder) at a small size, with a byte-level BPE tokenizer trained on the world's text.
Everything is seeded: scenes come from numpy Generators seeded (stream, index) — stream 1 for training;
the held-out set (heldout.py) uses stream 2 — and torch from --seed. Weights are written as float16.
With --minutes the learning-rate schedule follows wall time (how many steps fit depends on how busy the
machine is; the log records them); with --steps N alone the run is step-for-step deterministic.
"""
import argparse
import copy
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


def make_item(tok, stats, index, image_tokens, caption_item, qa_turns=1, patch=PATCH):
    """One training sequence: (image, ids, labels, present, patches): `present` marks the scene's categories,
    `patches` each image token's (patch_labels). A caption item is one turn; a question item is
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
    return image, ids, labels, present, patch_labels(objects, patch)


def patch_labels(objects, patch):
    """Which categories each image token shows: a (tokens, categories) 0/1 array, row-major over the patch
    grid like CLIP's tokens. A category is in a patch when a pixel of its shape there is not covered by a
    later-drawn object (faint objects count: they are there, only hard to see)."""
    owner = np.full((IMAGE_SIZE, IMAGE_SIZE), -1)
    for o in objects:
        shape, _, _ = world.look(o["category"])
        m = world.shape_mask(shape, o["side"])
        region = owner[o["y"]:o["y"] + o["side"], o["x"]:o["x"] + o["side"]]
        region[m] = o["category"]
    side = IMAGE_SIZE // patch
    out = np.zeros((side * side, len(world.NAMES)), dtype=np.float32)
    for r in range(side):
        for c in range(side):
            cats = np.unique(owner[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch])
            out[r * side + c, cats[cats >= 0]] = 1.0
    return out


def pixels(images):
    x = torch.from_numpy(np.stack(images)).float().div(255).permute(0, 3, 1, 2)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def batch(items, pad_id):
    longest = max(len(seq) for _, seq, _, _, _ in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.long)
    for i, (_, seq, lab, _, _) in enumerate(items):
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, :len(seq)] = torch.tensor(lab)
        mask[i, :len(seq)] = 1
    present = torch.tensor([p for _, _, _, p, _ in items])
    patches = torch.from_numpy(np.stack([p for _, _, _, _, p in items]))
    return ids, mask, labels, pixels([im for im, _, _, _, _ in items]), present, patches


def projected_image_tokens(model, px):
    """The projector's output for each image token, (batch, tokens, hidden), as the decoder receives it."""
    feats = model.model.get_image_features(pixel_values=px)
    feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    if isinstance(feats, (list, tuple)):
        feats = torch.stack(list(feats))
    return feats


def pretrain_tower(model, probe, stats, args):
    """Trains the tower, projector and patch probe alone on the patch-level grounding loss for
    --pretrain-tower-minutes (constant --lr, batch --batch); returns the next unused training scene index."""
    parts = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
    opt = torch.optim.AdamW(parts + list(probe.parameters()), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    start = time.time()
    index = 0
    step = 0
    while time.time() - start < 60 * args.pretrain_tower_minutes:
        step += 1
        images, targets = [], []
        for _ in range(args.batch):
            _, objects, image, _ = world.make_scene(stats, (1, index), IMAGE_SIZE)
            images.append(image)
            targets.append(patch_labels(objects, args.patch))
            index += 1
        feats = projected_image_tokens(model, pixels(images))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(feats), torch.from_numpy(np.stack(targets)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == 1:
            print(f"tower pretraining step {step} grounding {loss.item():.4f} elapsed {time.time() - start:.0f}s", flush=True)
    print(f"tower pretraining: {step} steps, {index} pictures", flush=True)
    return index


def save(model, tok, out):
    """Writes the model (float16), its tokenizer and preprocessor configuration to the folder `out`."""
    os.makedirs(out, exist_ok=True)
    model.eval()
    model.half().save_pretrained(out, safe_serialization=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 256}, f, indent=2)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                   "size": {"shortest_edge": IMAGE_SIZE}, "resample": 3, "do_center_crop": True,
                   "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_rescale": True,
                   "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
                   "do_convert_rgb": True}, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coco-gt", required=True, help="CHAIR's coco2014_gt_objects.json (COCO statistics)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is fastest on a busy machine (under load 11-16 on 2 cores, 2 threads took "
                         "about 0.3 s per picture, 1 thread 0.1-0.17 s; docs/organism.md, Training)")
    ap.add_argument("--patch", type=int, default=PATCH,
                    help="the CLIP tower's patch size: 16 gives 16 image tokens, 8 gives 64")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--grounding", type=float, default=1.0,
                    help="weight of the grounding loss (image tokens → present categories); 0 = captions and answers only")
    ap.add_argument("--grounding-target", choices=["image", "patch"], default="image",
                    help="image: the image tokens, read through the LM head's category rows (max over tokens), say "
                         "which categories the picture holds (attempt 3); patch: each image token, read by a linear "
                         "probe that is not saved, says which categories its own patch shows")
    ap.add_argument("--content-weight", type=float, default=1.0,
                    help="loss weight of the tokens that depend on the picture (object words, Yes/No) against 1 for "
                         "the rest; 1 = plain cross-entropy")
    ap.add_argument("--pretrain-tower-minutes", type=float, default=0,
                    help="before the joint run, train only the tower, projector and the patch probe on the patch-level "
                         "grounding loss for this many minutes (pictures only, no text; about 20 steps of 16 pictures "
                         "a second on one thread): in the joint run the language loss's gradient on the tower is larger than the "
                         "grounding loss's and unrelated to it, so the tower learns slowly (docs/organism.md, Training); "
                         "0 = no pretraining")
    ap.add_argument("--tower-lr-scale", type=float, default=1.0,
                    help="the joint run's learning rate for the tower and projector, as a fraction of --lr (e.g. 0.1 "
                         "after --pretrain-tower-minutes, so the language loss does not undo the pretrained tower; 0 "
                         "freezes them); 1 = one learning rate for everything")
    ap.add_argument("--qa-turns", type=int, default=6,
                    help="questions per question item (a multi-turn conversation about one image)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="train for this many minutes of wall time instead of --steps: the learning-rate schedule "
                         "follows the elapsed fraction of the budget, so a busy machine takes fewer steps (the log "
                         "records how many); 0 = a fixed --steps schedule")
    ap.add_argument("--snapshot-minutes", type=float, default=0,
                    help="also save a copy of the model every this many minutes of wall time (counted from the "
                         "start, tower pretraining included) to <out>/snap-<minute>, to evaluate it while it "
                         "trains; the copy does not change the training; 0 = none")
    args = ap.parse_args()
    print("arguments: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), flush=True)
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    start = time.time()

    stats = world.Statistics(args.coco_gt)
    tok = build_tokenizer(stats, args.vocab)
    vocab = tok.get_vocab_size()
    image_token = tok.token_to_id("<image>")
    pad = tok.token_to_id("<pad>")
    side = IMAGE_SIZE // args.patch
    image_tokens = side * side   # CLS dropped by the "default" feature strategy

    vision = CLIPVisionConfig(hidden_size=96, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=args.patch, projection_dim=96, hidden_act="quick_gelu")
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

    # The tokens that depend on the picture: each category word's and synonym's first token (" dog", " puppy")
    # and the answers " Yes" / " No".
    content_words = [w for name in world.NAMES for w in [name] + world.SYNONYMS[name]] + ["Yes", "No"]
    content_tokens = torch.tensor(sorted({tok.encode(" " + w, add_special_tokens=False).ids[0] for w in content_words}))
    # Each category's first token in a caption (" dog"): the LM-head rows the image-level grounding loss reads.
    category_tokens = torch.tensor([tok.encode(" " + name, add_special_tokens=False).ids[0] for name in world.NAMES])
    # The tower and projector form their own parameter group: --tower-lr-scale sets their learning rate apart.
    visual = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
    seen = {id(p) for p in visual}
    trained = [p for p in model.parameters() if id(p) not in seen]
    if args.grounding_target == "patch" or args.pretrain_tower_minutes:
        # The patch-level grounding probe: image token → category logits. Trained with the model, never saved.
        probe = torch.nn.Linear(text.hidden_size, len(world.NAMES))
        trained += list(probe.parameters())
    groups = [{"params": trained, "scale": 1.0}, {"params": visual, "scale": args.tower_lr_scale}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    index = 0
    if args.pretrain_tower_minutes:
        index = pretrain_tower(model, probe, stats, args)
    smoothed = None
    train_start = time.time()
    next_snapshot = args.snapshot_minutes
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
            g["lr"] = lr * g["scale"]
        items = []
        for j in range(args.batch):
            items.append(make_item(tok, stats, index, image_tokens, caption_item=(j % 2 == 0), qa_turns=args.qa_turns,
                                   patch=args.patch))
            index += 1
        ids, mask, labels, px, present, patches = batch(items, pad)
        out = model(input_ids=ids, attention_mask=mask, pixel_values=px)
        # Next-token cross-entropy over the answer tokens; the tokens that depend on the picture (object words,
        # Yes/No) weigh --content-weight times as much, so the decoder learns to read the image tokens instead
        # of settling for the captions' phrasing, which it learns first. Every target stays the true text.
        logits = out.logits[:, :-1].float()
        targets = labels[:, 1:]
        token_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                       ignore_index=-100, reduction="none").view(targets.shape)
        counted = (targets != -100).float()
        weights = counted * (1 + (args.content_weight - 1) * torch.isin(targets, content_tokens).float())
        lm_loss = (token_loss * counted).sum() / counted.sum()
        loss_total = (token_loss * weights).sum() / counted.sum()
        if args.grounding:
            # Grounding loss, a training aid for the tower and projector; it never touches captions or answers.
            feats = projected_image_tokens(model, px)
            if args.grounding_target == "patch":
                # Each projected image token, read by the linear probe, says which categories its patch shows
                # (binary cross-entropy against the patch's true objects): a dense signal of where each object is.
                aux = torch.nn.functional.binary_cross_entropy_with_logits(probe(feats), patches)
            else:
                # The projected image tokens, read through the LM head's rows of the category words, say which
                # categories the picture holds (max over tokens; binary cross-entropy against the scene's true
                # objects), so the decoder can find an object's name in the image.
                head = model.lm_head.weight[category_tokens]
                scores = (feats @ head.T).amax(dim=1)
                aux = torch.nn.functional.binary_cross_entropy_with_logits(scores, present)
            loss_total = loss_total + args.grounding * aux
        opt.zero_grad(set_to_none=True)
        loss_total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = lm_loss.item()
        smoothed = loss if smoothed is None else 0.95 * smoothed + 0.05 * loss
        if step % 10 == 0 or step == 1:
            extra = f" grounding {aux.item():.4f}" if args.grounding else ""
            load = " load %.1f" % os.getloadavg()[0] if step % 100 == 0 else ""
            print(f"step {step} loss {loss:.4f} smoothed {smoothed:.4f}{extra} lr {lr:.2e} elapsed {time.time() - start:.0f}s{load}", flush=True)
        if args.snapshot_minutes and time.time() - start >= 60 * next_snapshot:
            folder = os.path.join(args.out, f"snap-{next_snapshot:g}")
            save(copy.deepcopy(model), tok, folder)
            model.train()
            print(f"snapshot {folder} after {step} steps, elapsed {time.time() - start:.0f}s", flush=True)
            while time.time() - start >= 60 * next_snapshot:
                next_snapshot += args.snapshot_minutes

    save(model, tok, args.out)
    print("load average at the end: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    print(f"wrote {args.out}; {step - 1} steps; total {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
