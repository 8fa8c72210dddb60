"""``m5data import``: read a dataset in another layout (M5Product, see ``export/m5product.py``) into a store.

What the layout carries becomes store rows: ``products`` (title, category path from the label
list), ``specs`` (from ``pv``), ``media`` (images, videos, audios as content-addressed blobs,
status ok) and, when the split lists are there, ``splits`` rows of one version. Product ids come
from ``m5data_items.json`` when the folder is an m5data export, else ``<platform>:<item id>``.
Run ``m5data extract`` afterwards for frames, MFCC and normalised images, and ``m5data align``
for unified labels.

The folder is untrusted (a downloaded dataset): it is read through :class:`.layout_folder.LayoutFolder`
(listed once, regular files inside it only, no path or glob built from an id), item and product ids
are checked, media are sniffed like downloads (:func:`m5data.download.sniff.sniff`). A bad
item fails alone, with its reason, before any of its blobs is written.

Memory is bounded whatever the number of items (M5Product has 6.3M): the JSON files are parsed as
streams (ijson) into a staging DuckDB database in a temp folder of the store (it spills to disk),
items come back from it in item id order, ``BATCH`` at a time, and each batch's blobs are synced and
its rows written before the next one is read.

One module per job: ``layout_folder.py`` (the untrusted folder: listing, safe opens, ids, media),
``utf8.py`` (strict byte-level UTF-8 of the JSON files), ``layout_files.py`` (the layout's JSON and
list files), ``staging.py`` (the DuckDB staging of the entries), ``checks.py`` (one item's checks),
``run.py`` (the import itself), ``limits.py`` (its sizes) and ``cli.py`` (the typer app).
"""
