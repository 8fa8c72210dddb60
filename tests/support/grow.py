"""Growing a store in a later write, as a crawl would: copies of products under new ids."""

import pyarrow as pa
import pyarrow.compute as pc


def copies(store, ids: list[str], prefix: str) -> list[str]:
    """Write copies of products ``ids`` (their products, media and specs rows) under new ids, one write each."""
    keep = pa.array(ids)
    new = {p: p.replace(":", f":{prefix}", 1) for p in ids}

    def moved(t):
        t = t.filter(pc.is_in(t.column("product_id"), keep))
        return t.set_column(t.schema.get_field_index("product_id"), "product_id",
                            pa.array([new[p] for p in t.column("product_id").to_pylist()], pa.string()))

    products = moved(store.read("products"))
    products = products.set_column(products.schema.get_field_index("source_id"), "source_id",
                                   pa.array([p.split(":", 1)[1] for p in products.column("product_id").to_pylist()]))
    media = moved(store.read("media"))
    media = media.set_column(media.schema.get_field_index("media_id"), "media_id",
                             pc.binary_join_element_wise(media.column("media_id"), pa.scalar(f"-{prefix}"), ""))
    store.write("products", products)
    store.write("media", media)
    store.write("specs", moved(store.read("specs")))
    return list(new.values())
