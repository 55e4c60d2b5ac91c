"""Writes the organism's held-out set: scenes of seed stream 2 (training uses stream 1, so no held-out
scene is a training scene), as small PNGs with COCO-layout annotations.

    python heldout.py --coco-gt ../shared/data/chair/coco2014_gt_objects.json --count 150 --out Annotations/organism

Folder written:
    images/COCO_val2014_%012d.png      the pictures (ids 1...count)
    instances_organism.json            COCO instances layout: images, one box per object, the categories
    scenes.json                        per image: each object's category, box, contrast and whether its
                                       visual evidence is weak (tiny or faint), for analysis
POPE questions are then built from instances_organism.json by `mirage pope build` (POPE's recipe).
"""
import argparse
import json
import os

from PIL import Image

import train
import world


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coco-gt", required=True)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    stats = world.Statistics(args.coco_gt)
    size = train.IMAGE_SIZE
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    images, annotations, scenes = [], [], {}
    for i in range(args.count):
        image_id = i + 1
        scene, objects, pixels, _ = world.make_scene(stats, (2, i), size)
        name = f"COCO_val2014_{image_id:012d}.png"
        Image.fromarray(pixels).save(os.path.join(args.out, "images", name), optimize=True)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        rows = []
        for o in objects:
            box = [o["x"], o["y"], o["side"], o["side"]]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": world.COCO_ID[world.NAMES[o["category"]]], "bbox": box,
                                "area": o["side"] * o["side"], "iscrowd": 0})
            rows.append({"category": world.NAMES[o["category"]], "bbox": box, "alpha": round(o["alpha"], 3),
                         "weak": o["weak"]})
        scenes[str(image_id)] = rows
    categories = [{"id": cid, "name": name, "supercategory": "organism"} for cid, name, _ in world.CATEGORIES]
    with open(os.path.join(args.out, "instances_organism.json"), "w") as f:
        json.dump({"info": {"description": "Mirage model organism, held-out scenes (seed stream 2)"},
                   "images": images, "annotations": annotations, "categories": categories}, f)
    with open(os.path.join(args.out, "scenes.json"), "w") as f:
        json.dump(scenes, f, indent=0, sort_keys=True)
    print(f"wrote {args.count} images to {args.out}")


if __name__ == "__main__":
    main()
