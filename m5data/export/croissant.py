"""``croissant.json``: Croissant 1.0 JSON-LD (https://mlcommons.org/croissant/) describing an export
layout's files (``distribution``) and record sets, so that ``mlcroissant.Dataset(jsonld=...)`` reads it.

- Parquet: the files ``data/*.parquet``, one record set ``products`` of their plain columns;
- WebDataset: the tar shards of this folder and ``_samples.parquet`` (the record set ``samples``: split,
  product id, digest and shard path of every sample, inherited shards' too);
- M5Product: ``captions.json``, the label and split files, and the record set ``images`` (each
  ``images/<item_id>.jpg`` with its item id).
"""

from __future__ import annotations

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
# the Croissant 1.0 context, as its specification and mlcroissant write it
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}
PARQUET = "application/x-parquet"
_TYPES = {"string": "sc:Text", "int": "sc:Integer"}
# the plain columns of the Parquet layout's rows (hf_parquet.SCHEMA)
PARQUET_COLUMNS = [("product_id", "string"), ("key", "string"), ("platform", "string"), ("source_id", "string"),
                   ("title", "string"), ("caption", "string"), ("class_id", "int"), ("class_name", "string"),
                   ("sub_class_id", "int"), ("sub_class_name", "string"), ("split", "string")]
SAMPLES_COLUMNS = [("split", "string"), ("product_id", "string"), ("digest", "string"), ("path", "string")]


def file_set(name: str, includes: str, fmt: str, description: str) -> dict:
    return {"@type": "cr:FileSet", "@id": name, "name": name, "description": description,
            "encodingFormat": fmt, "includes": includes}


def _columns(record: str, source: str, columns: list[tuple[str, str]]) -> list[dict]:
    return [{"@type": "cr:Field", "@id": f"{record}/{name}", "name": name, "dataType": _TYPES[kind],
             "source": {"fileSet": {"@id": source}, "extract": {"column": name}}} for name, kind in columns]


def record_set(name: str, description: str, fields: list[dict]) -> dict:
    return {"@type": "cr:RecordSet", "@id": name, "name": name, "description": description, "field": fields}


def _layout(fmt: str) -> tuple[list[dict], list[dict]]:
    """``(distribution, recordSet)`` of a layout."""
    if fmt == "parquet":
        return ([file_set("parquet-files", "data/*.parquet", PARQUET, "one Parquet file per shard and split")],
                [record_set("products", "one row per product and split (media columns left out here)",
                            _columns("products", "parquet-files", PARQUET_COLUMNS))])
    if fmt == "webdataset":
        return ([file_set("shards", "*.tar", "application/x-tar", "WebDataset tar shards of this folder "
                          "(every shard the <split>.index.json files list, taken-over ones too)"),
                 file_set("samples-index", "_samples.parquet", PARQUET, "one row per sample: its shard")],
                [record_set("samples", "split, product id, digest and shard of every sample",
                            _columns("samples", "samples-index", SAMPLES_COLUMNS))])
    images = file_set("image-files", "images/*.jpg", "image/jpeg", "the normalised main image of each item")
    return ([file_set("captions", "captions.json", "application/json", "{item_id: {title, pv}}"),
             file_set("lists", "*.txt", "text/plain", "the split lists: one item id per line"), images],
            [record_set("images", "each item's main image", [
                {"@type": "cr:Field", "@id": "images/item_id", "name": "item_id", "dataType": "sc:Text",
                 "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "filename"},
                            "transform": {"regex": "^(.*)\\.jpg$"}}},
                {"@type": "cr:Field", "@id": "images/image", "name": "image", "dataType": "sc:ImageObject",
                 "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "content"}}}])])


def croissant(facts, cite_as: str) -> dict:
    """The JSON-LD of an export of ``facts`` (a :class:`~m5data.export.card.CardFacts`), cited as ``cite_as``."""
    distribution, records = _layout(facts.fmt)
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CONFORMS_TO,
        "name": f"m5data-{facts.fmt}-{facts.version}",
        "description": (f"M5Product-style five-modality e-commerce products, split version {facts.version}, "
                        f"{facts.samples} samples in the {facts.fmt} layout; see README.md"),
        "license": facts.licence, "version": "1.0.0", "citeAs": cite_as,
        "inLanguage": facts.languages, "keywords": ["e-commerce", "multimodal", "M5Product", "MEP-3M"],
        "temporalCoverage": "/".join(facts.crawled) if facts.crawled else None,
        "distribution": distribution, "recordSet": records,
    }
    return {k: v for k, v in doc.items() if v is not None}
