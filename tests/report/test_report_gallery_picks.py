"""The gallery's picks moved from the last run's by the products touched since equal the picks ranked
from every product's flags (``gallery_data.rank_picks``), whatever the touched products did: new ones with
an image, pictures lost, a product moved to another category, a category new among the top ones."""

import random

import pyarrow as pa
import pytest

from m5data.report import fact_sql, gallery_data
from m5data.storage.readdb import read_cursor


def _flags(products: dict[str, tuple[str, bool]]) -> pa.Table:
    ids = sorted(products)
    return pa.table({"product_id": ids, "path": [products[p][0] for p in ids],
                     "levels": pa.array([2] * len(ids), pa.int32()), "m_image": [products[p][1] for p in ids]})


def _gallery_picks(con, per_category: int, categories: int = 6, kept: list[tuple[str, str]] | None = None,
                   touched: set[str] | None = None, after: pa.Table | None = None) -> list[tuple[str, str]]:
    """(product_id, category) of the first few products (by id) with a downloaded image of each top category
    (by those products: the ``imaged`` total, ``fact_sql.IMAGED``).

    ``kept``: the last complete run's picks, ``touched``: the products whose rows were written since and
    ``after``: their flags now (an incremental run): each category's picks are moved by them
    (``gallery_data.moved_picks``) where they can be, the others ranked from every product's flags (``gallery_data.rank_picks``):
    the gallery's composition (``gallery.gallery``) without its spare categories."""
    top = gallery_data.top_categories(con, categories)
    moved = (gallery_data.moved_picks(top, per_category, kept, touched, after)
             if kept is not None and touched is not None and after is not None else {})
    ranked = gallery_data.rank_picks(con, [c for c in top if c not in moved], per_category)
    return [(pid, cat) for cat in top for pid in (moved.get(cat) or ranked.get(cat, []))]


def _picks(products, per_category, **moved):
    con = read_cursor()  # registered views are the cursor's own (a database of its own cost ~16 ms a case)
    try:
        flags = _flags(products)
        con.register(fact_sql.FLAGS_VIEW, flags)
        con.register("report_imaged_paths", con.sql(fact_sql.IMAGED.format(flags="SELECT * FROM report_flags")).to_arrow_table())
        return _gallery_picks(con, per_category, **moved)
    finally:
        con.close()


@pytest.mark.parametrize("seed", range(40))
def test_moved_picks_equal_the_picks_ranked_from_every_flag(seed):
    rnd = random.Random(seed)
    cats = [f"c{i}" for i in range(rnd.randint(3, 9))]
    products = {f"p{rnd.randint(0, 999):03d}": (rnd.choice(cats), rnd.random() < 0.8) for _ in range(rnd.randint(10, 80))}
    per_category = rnd.randint(1, 4)
    before = _picks(products, per_category)
    touched = set()
    for _ in range(rnd.randint(0, 12)):  # new products, changed ones (category, image), in any mix
        pid = rnd.choice(list(products)) if rnd.random() < 0.5 else f"p{rnd.randint(0, 999):03d}"
        products[pid] = (rnd.choice(cats), rnd.random() < 0.7)
        touched.add(pid)
    for pid in rnd.sample(sorted(products), k=min(2, len(products))):  # touched with nothing changed
        touched.add(pid)
    after = _flags({p: products[p] for p in touched})
    assert _picks(products, per_category, kept=before, touched=touched, after=after) == _picks(products, per_category)



def test_a_full_category_that_lost_a_pick_is_ranked_again_and_an_untouched_store_keeps_its_picks():
    products = {f"p{i}": ("a", True) for i in range(5)} | {f"q{i}": ("b", True) for i in range(2)}
    before = _picks(products, 2)
    assert before == [("p0", "a"), ("p1", "a"), ("q0", "b"), ("q1", "b")]
    assert gallery_data.moved_picks(["a", "b"], 2, before, set(), _flags({})) == {"a": ["p0", "p1"], "b": ["q0", "q1"]}
    products["p0"] = ("a", False)  # a full category's pick lost its image: its next product is not known
    assert gallery_data.moved_picks(["a", "b"], 2, before, {"p0"}, _flags({"p0": products["p0"]})) == {"b": ["q0", "q1"]}
    assert _picks(products, 2, kept=before, touched={"p0"}, after=_flags({"p0": products["p0"]})) == [
        ("p1", "a"), ("p2", "a"), ("q0", "b"), ("q1", "b")]
    products["o9"] = ("b", True)  # a new product before the others by id, in a category it fills
    assert gallery_data.moved_picks(["a", "b"], 2, before, {"o9"}, _flags({"o9": products["o9"]})) == {
        "a": ["p0", "p1"], "b": ["o9", "q0"]}
    assert gallery_data.moved_picks(["a", "b", "c"], 2, before, set(), _flags({})) == {"a": ["p0", "p1"], "b": ["q0", "q1"]}  # c: not kept
