"""Ground truth of a demo world, written next to the site (``<out>/truth/``) and never served.

Tables (Parquet): products, specs, media, alignment, level2_pairs, instances, pages; plus
``level1_mapping.toml`` and ``manifest.json``. ``load_truth(out_dir)`` reads them back.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .faults import MEDIA_OK, expected_modalities
from .pages import page_charsets
from .taxonomy import PLATFORMS, label_ratio
from .world import GENERATOR_VERSION, World

TABLES = ["products", "specs", "media", "alignment", "level2_pairs", "instances", "pages"]


def _schema(name: str):
    import pyarrow as pa

    s, i, b, f, lst = pa.string(), pa.int64(), pa.bool_(), pa.float64(), pa.list_(pa.string())
    cols = {
        "products": [("product_id", s), ("platform", s), ("source_id", s), ("url", s), ("title", s),
                     ("merchant_id", s), ("shop_name", s), ("price", f), ("instance_id", s),
                     ("category_path", lst), ("listing_path", lst), ("category_code", s),
                     ("class_id", i), ("class_name", s), ("sub_class_id", i), ("sub_class_name", s),
                     ("subsub_class_id", i), ("subsub_class_name", s), ("caption_mismatched", b),
                     ("caption_instance_id", s), ("page_fault", s), ("http_fault", s),
                     ("page_charset", s), ("page_encoding", s), ("template", s), ("reachable", b),
                     ("n_specs", i), ("n_images", i), ("has_video", b), ("expect_image", b),
                     ("expect_text", b), ("expect_video", b), ("expect_audio", b),
                     ("expect_table", b)],
        "specs": [("product_id", s), ("position", i), ("property", s), ("value", s)],
        "media": [("product_id", s), ("kind", s), ("role", s), ("position", i), ("url", s),
                  ("format", s), ("fault", s), ("decodable", b), ("has_audio", b),
                  ("duration_s", f), ("fps", i), ("width", i), ("height", i), ("bytes", i),
                  ("sha256", s)],
        "alignment": [("platform", s), ("level1_name", s), ("level2_name", s), ("level3_name", s),
                      ("category_code", s), ("class_id", i), ("class_name", s),
                      ("sub_class_id", i), ("sub_class_name", s), ("subsub_class_id", i),
                      ("subsub_class_name", s), ("pair_kind", s), ("n_products", i)],
        "level2_pairs": [("class_id", i), ("sub_class_id", i), ("sub_class_name", s),
                         ("shopa_level2", s), ("shopb_level2", s), ("pair_kind", s),
                         ("label_ratio", f), ("finer_platform", s), ("shopa_products", i),
                         ("shopb_products", i)],
        "instances": [("instance_id", s), ("class_id", i), ("sub_class_id", i),
                      ("subsub_class_id", i), ("brand", s), ("model", s), ("n_listings", i),
                      ("product_ids", lst)],
        "pages": [("url", s), ("platform", s), ("kind", s), ("category_code", s), ("page", i),
                  ("n_products", i), ("http_fault", s)],
        # only with WorldConfig.contact_products: each contact detail added (kind phone, email or
        # contact; field title or spec:<property>; its text as the page shows it)
        "contacts": [("product_id", s), ("kind", s), ("field", s), ("text", s)],
    }[name]
    return pa.schema(cols)


def _rows(world: World, pages: list[dict], facts: dict[str, dict]) -> dict[str, list[dict]]:
    tax = world.taxonomy
    rows: dict[str, list[dict]] = {t: [] for t in TABLES}
    counts: Counter = Counter()
    for p in world.products:
        cat, inst = p.category, p.instance
        counts[(p.platform, cat.code)] += 1
        declared, actual = page_charsets(p)
        specs = [] if p.page_fault == "missing_specs" else p.specs
        rows["products"].append({
            "product_id": p.product_id, "platform": p.platform, "source_id": p.source_id,
            "url": p.url, "title": "" if p.page_fault == "missing_title" else p.title,
            "merchant_id": p.merchant_id, "shop_name": p.shop_name, "price": p.price,
            "instance_id": inst.instance_id,
            "category_path": [] if p.page_fault == "missing_breadcrumb" else list(cat.path),
            "listing_path": list(cat.path), "category_code": cat.code,
            "class_id": cat.class_id, "class_name": tax.classes[cat.class_id],
            "sub_class_id": cat.sub_id, "sub_class_name": inst.sub.name,
            "subsub_class_id": cat.subsub_id, "subsub_class_name": cat.subsub_name,
            "caption_mismatched": p.caption_mismatched,
            "caption_instance_id": p.caption_instance.instance_id if p.caption_instance else "",
            "page_fault": p.page_fault, "http_fault": p.http_fault, "page_charset": declared,
            "page_encoding": actual, "template": p.template, "reachable": True,
            "n_specs": len(specs), "n_images": len(p.images), "has_video": p.video is not None,
            **expected_modalities(p)})
        rows["specs"] += [{"product_id": p.product_id, "position": i, "property": k, "value": v}
                          for i, (k, v) in enumerate(specs)]
        for m in p.images + ([p.video] if p.video else []):
            fact = facts.get(m.url, {})
            rows["media"].append({
                "product_id": p.product_id, "kind": m.kind, "role": m.role, "position": m.position,
                "url": m.url, "format": m.url.rsplit(".", 1)[1], "fault": m.fault,
                "decodable": m.fault in MEDIA_OK, "has_audio": m.has_audio,
                "duration_s": m.duration_s, "fps": m.fps, "width": m.width, "height": m.height,
                "bytes": fact.get("bytes", 0), "sha256": fact.get("sha256", "")})
    seen: set[tuple[str, str]] = set()
    for p in world.products:
        cat, sub = p.category, p.instance.sub
        if (p.platform, cat.code) in seen:
            continue
        seen.add((p.platform, cat.code))
        rows["alignment"].append({
            "platform": p.platform, "level1_name": cat.path[0], "level2_name": cat.path[1],
            "level3_name": cat.path[2] if len(cat.path) == 3 else "", "category_code": cat.code,
            "class_id": cat.class_id, "class_name": tax.classes[cat.class_id],
            "sub_class_id": sub.sub_id, "sub_class_name": sub.name,
            "subsub_class_id": cat.subsub_id if len(cat.path) == 3 else 0,
            "subsub_class_name": cat.subsub_name if len(cat.path) == 3 else "",
            "pair_kind": sub.kind, "n_products": counts[(p.platform, cat.code)]})
    rows["alignment"].sort(key=lambda r: (r["platform"], r["class_id"], r["sub_class_id"],
                                          r["subsub_class_id"]))
    per_sub = Counter((p.platform, p.instance.sub.sub_id) for p in world.products)
    for sub in sorted(tax.subs, key=lambda s: s.sub_id):
        if len(sub.presence) == 2:
            rows["level2_pairs"].append({
                "class_id": sub.class_id, "sub_class_id": sub.sub_id, "sub_class_name": sub.name,
                "shopa_level2": sub.names["shopa"], "shopb_level2": sub.names["shopb"],
                "pair_kind": sub.kind,
                "label_ratio": round(label_ratio(sub.names["shopa"], sub.names["shopb"]), 4),
                "finer_platform": sub.finer or "", "shopa_products": per_sub[("shopa", sub.sub_id)],
                "shopb_products": per_sub[("shopb", sub.sub_id)]})
    rows["instances"] += [instance_row(inst) for inst in world.instances]
    rows["pages"] = sorted(pages, key=lambda r: r["url"])
    return rows


def instance_row(inst) -> dict:
    """The ``instances`` truth row of one product instance (the demo world's and the scale world's)."""
    return {"instance_id": inst.instance_id, "class_id": inst.sub.class_id,
            "sub_class_id": inst.sub.sub_id, "subsub_class_id": inst.subsub[0] if inst.subsub else 0,
            "brand": inst.brand, "model": inst.model, "n_listings": len(inst.listings),
            "product_ids": sorted(p.product_id for p in inst.listings)}


def level1_mapping_toml(world: World) -> str:
    """The align stage's mapping file: each platform's level-1 names -> unified class ids."""
    tax = world.taxonomy
    q = lambda text: json.dumps(text, ensure_ascii=False)  # a TOML basic string
    out = ["# Level-1 mapping of the m5data demo shop: platform level-1 name -> unified class id.",
           "[classes]"]
    out += [f"{cid} = {q(name)}" for cid, name in sorted(tax.classes.items())]
    for platform in PLATFORMS:
        out += ["", f"[{platform}]"]
        out += [f"{q(name)} = {cid}" for cid, name in sorted(tax.level1[platform].items())]
    return "\n".join(out) + "\n"


# WorldConfig fields in the manifest only when on (or, for these, off their default): a world without
# them stays byte for byte the same
OFF_UNLESS_ON = ("optouts", "contact_products", "egress_cases")
DEFAULT_UNLESS_SET = {"image_scale": 1.0}


def manifest(world: World, rows: dict[str, list[dict]]) -> dict:
    """Seed, sizes, counts and generator version (no timestamps: the output is reproducible)."""
    prods, media = rows["products"], rows["media"]
    complete = sum(all(r[k] for k in r if k.startswith("expect_")) for r in prods)
    # a world without opt-outs or contacts: its manifest as before those fields were
    config = {k: v for k, v in asdict(world.config).items()
              if (v or k not in OFF_UNLESS_ON) and not (k in DEFAULT_UNLESS_SET and v == DEFAULT_UNLESS_SET[k])}
    return {
        "generator": "m5data.demo", "generator_version": GENERATOR_VERSION,
        "seed": world.config.seed, "config": config,
        "counts": {
            "products": len(prods),
            "products_by_platform": dict(sorted(Counter(r["platform"] for r in prods).items())),
            "instances": len(world.instances),
            "instances_listed_more_than_once": sum(len(i.listings) > 1 for i in world.instances),
            "merchants": len({(r["platform"], r["merchant_id"]) for r in prods}),
            "unified_sub_classes": len(world.taxonomy.subs),
            "categories_by_platform": dict(sorted(Counter(r["platform"] for r in rows["alignment"]).items())),
            "pair_kinds": dict(sorted(Counter(r["pair_kind"] for r in rows["level2_pairs"]).items())),
            "images": sum(r["kind"] == "image" for r in media),
            "videos": sum(r["kind"] == "video" for r in media),
            "spec_rows": len(rows["specs"]),
            "media_faults": dict(sorted(Counter(f"{r['kind']}:{r['fault']}" for r in media).items())),
            "page_faults": dict(sorted(Counter(r["page_fault"] for r in prods).items())),
            "http_faults": dict(sorted(Counter(f"{r['kind']}:{r['http_fault']}" for r in rows["pages"]).items())),
            "caption_mismatched": sum(r["caption_mismatched"] for r in prods),
            "products_with_all_five_modalities": complete,
            "listing_pages": sum(r["kind"] == "listing" for r in rows["pages"]),
        },
        "tables": TABLES + (["contacts"] if rows.get("contacts") else []),
        **({"contacts": len(rows["contacts"])} if rows.get("contacts") else {}),
    }


def write_truth(world: World, pages: list[dict], facts: dict[str, dict], truth_dir: Path) -> dict:
    """Write every truth table, the level-1 mapping and the manifest; return the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    truth_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(world, pages, facts)
    rows["contacts"] = [{"product_id": p.product_id, **c} for p in world.products for c in p.contacts]
    for name in TABLES + (["contacts"] if rows["contacts"] else []):
        table = pa.Table.from_pylist(rows[name], schema=_schema(name))
        pq.write_table(table, truth_dir / f"{name}.parquet", compression="zstd")
    (truth_dir / "level1_mapping.toml").write_text(level1_mapping_toml(world), encoding="utf-8")
    man = manifest(world, rows)
    (truth_dir / "manifest.json").write_text(
        json.dumps(man, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return man


@dataclass
class Truth:
    """A demo world's truth, read back: each table as a list of dicts."""

    products: list[dict]
    specs: list[dict]
    media: list[dict]
    alignment: list[dict]
    level2_pairs: list[dict]
    instances: list[dict]
    pages: list[dict]
    level1_mapping: dict
    manifest: dict
    contacts: list[dict] = field(default_factory=list)  # the contact details added (contact_products)

    def product(self, product_id: str) -> dict:
        """One product's truth row."""
        return next(r for r in self.products if r["product_id"] == product_id)


def load_truth(out_dir: str | Path) -> Truth:
    """Read ``<out_dir>/truth`` (``out_dir`` may also be the truth folder itself)."""
    import pyarrow.parquet as pq

    from ..storage.truth_files import truth_folder

    d = truth_folder(out_dir)
    tables = {name: pq.read_table(d / f"{name}.parquet").to_pylist() for name in TABLES}
    if (d / "contacts.parquet").is_file():
        tables["contacts"] = pq.read_table(d / "contacts.parquet").to_pylist()
    mapping = tomllib.loads((d / "level1_mapping.toml").read_text(encoding="utf-8"))
    return Truth(**tables, level1_mapping=mapping,
                 manifest=json.loads((d / "manifest.json").read_text(encoding="utf-8")))
