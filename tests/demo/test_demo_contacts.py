"""Contact details in a few demo listings (WorldConfig.contact_products, issue 57): off by default (the
world as it was), on in `m5data demo`; the truth lists each, the pages show them, and the export's
masking catches every one."""

from __future__ import annotations

from html import unescape

from m5data.demo import truth
from m5data.demo.pages import page_charsets
from m5data.demo.run import contact_products
from m5data.demo.site import write_site
from m5data.demo.world import WorldConfig, build_world
from m5data.masking import mask_text


def test_contacts_change_only_the_listings_they_are_added_to(tmp_path):
    plain = build_world(WorldConfig(products=60, seed=0))
    with_contacts = build_world(WorldConfig(products=60, seed=0, contact_products=6))
    assert [p.product_id for p in plain.products] == [p.product_id for p in with_contacts.products]
    changed = {p.product_id for p in with_contacts.products if p.contacts}
    assert len(changed) == 6 and not any(p.contacts for p in plain.products)
    for a, b in zip(plain.products, with_contacts.products):
        if a.product_id in changed:
            assert b.title.startswith(a.title) and b.specs[:len(a.specs)] == a.specs
        else:
            assert (a.title, a.specs, a.price, a.images, a.video) == (b.title, b.specs, b.price, b.images, b.video)
    # a world without contacts writes the manifest it wrote before the field existed
    assert "contact_products" not in truth.manifest(plain, truth._rows(plain, [], {}))["config"]
    assert contact_products(300) == 5 and contact_products(40) == 2


def test_the_truth_lists_each_contact_the_page_shows_and_masking_catches_it(tmp_path):
    world = build_world(WorldConfig(products=40, seed=3, contact_products=5))
    pages, _ = write_site(world, tmp_path / "site")
    rows = [{"product_id": p.product_id, **c} for p in world.products for c in p.contacts]
    assert {r["kind"] for r in rows} == {"phone", "email", "contact"}
    assert {r["field"].split(":")[0] for r in rows} == {"title", "spec"}
    for r in rows:
        product = next(p for p in world.products if p.product_id == r["product_id"])
        encoding = page_charsets(product)[1]  # the charset the page is written in (gbk on shopb)
        page = unescape((tmp_path / "site" / product.url.lstrip("/")).read_bytes().decode(encoding))
        assert r["text"] in page, (r, product.url)
        masked, n = mask_text(r["text"])
        assert n == 1 and r["text"] not in masked
    truth.write_truth(world, pages, {}, tmp_path / "truth")
    read = truth.load_truth(tmp_path)
    assert sorted(read.contacts, key=str) == sorted(rows, key=str)
    assert read.manifest["contacts"] == 5 and "contacts" in read.manifest["tables"]
