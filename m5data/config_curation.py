"""The sections of the settings for the curation stages and what follows them: one dataclass per
``[section]`` of ``m5data.toml`` (annotate, dedup, match_level, pools, crowd, matcher, splits, export, train,
report, flows), each field's default with its meaning and unit. Plain data, like the store's and the
media stages' sections in :mod:`m5data.config_sections`; :mod:`m5data.config` re-exports these classes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AnnotateSettings:
    """What the curation stages share (docs/annotate.md): the seed, and what two of them must agree on (the
    brand's property, the matcher's text model); each stage's own settings are its section
    (``[dedup]``, ``[match_level]``, ``[pools]``, ``[crowd]``, ``[matcher]``)."""

    seed: int = 0  # every random choice of the curation stages (simulated workers, gold sampling)
    brand_property: str = "品牌"  # the spec property that names the brand (dedup's rules, the matcher's and crowd's pair features); was dedup.brand_property
    text_model: str = ""  # local sentence-transformers model folder for the matcher's embed_* features (trained by matcher, applied by dedup and crowd); "" = none; was matcher.text_model


@dataclass
class DedupSettings:
    """``m5data annotate dedup``, the dedup stage (docs/annotate.md "Duplicate groups")."""

    phash_threshold: int = 6  # near-duplicate main images: pHash Hamming distance <= this (of 64 bits)
    phash_bands: int = 4  # pHash multi-index: bands of the 64 bits; probes within threshold // bands bits per band
    shingle: int = 3  # characters per title shingle (Chinese is shingled by character, not by word)
    num_perm: int = 128  # MinHash permutations (title and spec sets)
    minhash_threshold: float = 0.7  # near-duplicate titles: estimated Jaccard of shingle sets >= this
    spec_lsh_threshold: float = 0.25  # spec rule: 'property=value' sets of exact Jaccard >= this (named when an LSH at 0.2 chose candidates)
    spec_min_shared: int = 2  # spec rule: >= this many properties besides the brand on both pages ...
    spec_min_agreement: float = 1.0  # ... with equal values on >= this share of them, and the same brand
    spec_chance: float = 0.05  # spec rule: <= this many other products of the brand expected to agree as much by chance
    spec_veto: bool = True  # phash/minhash pairs are rejected when the brands or spec values disagree
    bucket_cap: int = 200  # an index bucket with more rows links them to its first row only (not all pairs)
    full_share: float = 0.2  # an incremental dedup groups every product again when more than this share changed
    matcher: str = "learned"  # rules | learned: learned adds wider candidates the trained matcher accepts (rules when no model)
    matcher_minhash_threshold: float = 0.3  # learned: title candidates of estimated shingle Jaccard >= this
    matcher_phash_threshold: int = 6  # learned: image candidates within this many pHash bits (of 64; above the rule's a second, costlier search)
    matcher_spec_jaccard: float = 0.1  # learned: spec-block candidates (same brand, one rare value shared) of entry Jaccard >= this
    matcher_spec_agreement: float = 0.75  # learned: ... agreeing on >= this share of the properties both list
    matcher_per_product: int = 2  # learned: of each source's candidates, a product's this many most similar (0: all)
    matcher_bucket_cap: int = 20  # learned: a wide title-index bucket of more rows links them to its first row only


@dataclass
class MatchLevelSettings:
    """``m5data annotate match-level``, the match-level stage (docs/annotate.md "Caption match level")."""

    folds: int = 5  # cross-fitting folds of the caption classifier (no product scores itself)
    hash_bits: int = 20  # caption features hashed into 2**this columns (no vocabulary); sub-class weights 4x that
    epochs: int = 3  # SGD passes over the training folds (more on a small store, see min_steps)
    min_steps: int = 100000  # at least this many SGD updates per model (a small store takes more passes, at most 50)
    lr: float = 0.5  # initial SGD learning rate of the caption classifier
    alpha: float = 0.0001  # L2 regularisation of the caption classifier
    batch: int = 8192  # products read, hashed and described per Arrow record batch
    image_gallery: int = 50000  # image neighbours come from at most this many labelled products (a seeded sample)
    spec_hits: float = 2.0  # spec_score = min(1, spec values found in the caption / this)
    image_k: int = 10  # nearest products by image descriptor that vote for the image's class
    weight_category: float = 0.6  # weight of category agreement in the score
    weight_spec: float = 0.25  # weight of spec-value overlap
    weight_image: float = 0.15  # weight of caption-image agreement
    well: float = 0.6  # level well at score >= this
    partial: float = 0.3  # level partial at score >= this (and < well); poor below
    refit_share: float = 0.8  # an incremental run fits the classifier again when it was fitted on fewer than this share of the products


@dataclass
class PoolsSettings:
    """``m5data annotate pools``, the pools stage (docs/annotate.md "Query candidate pools")."""

    queries: float = 0.1  # queries without --split-version: a share of products (<= 1; 1 = all) or a count (> 1), seeded stable sample
    k: int = 500  # candidates kept per query (the papers' 500)
    text_dim: int = 128  # SVD components of the TF-IDF text embedding
    text_model: str = ""  # local sentence-transformers model folder for the text block; "" = TF-IDF + SVD
    image: str = "descriptor"  # image embedder: descriptor (colour, layout, gradients, pHash), vectors (the vision stage's image_vectors of the main image) or none
    image_model: str = ""  # pools.image = vectors: the image_vectors model (as its model column names it); "" = the one model the table holds
    text_weight: float = 1.0  # weight of the text block in the concatenated vector
    image_weight: float = 1.0  # weight of the image block in the concatenated vector
    search: str = "exact"  # exact (blocked matmul), faiss-flat (IndexFlatIP) or faiss-hnsw (approximate)
    block: int = 2048  # queries per search block (memory: block x 4,096 float32 scores) and per resume marker
    fit_sample: int = 100_000  # above 65,536 products: captions the TF-IDF vocabulary and SVD are fitted on (seeded sample)
    svd: str = "arpack"  # the text SVD's solver: arpack (converged top components: a refit on a store grown by 1% keeps 0.996 of pool entries at 100k), randomized (svd_iter power iterations; at 7, 0.959), oversampled (randomized with a sketch twice text_dim wide): docs/annotate.md
    svd_iter: int = 7  # power iterations of the randomized and oversampled text SVDs (arpack iterates to convergence)
    margin: int = 50  # candidates kept per query beyond k: an incremental run refills a pool that lost some from them
    compact_share: float = 1.0  # an incremental run compacts the pools table once the rows its re-ranked pools replaced pass this share of the live rows (0: never)
    refit_share: float = 0.8  # an incremental run embeds and searches everything again when the embedder was fitted on fewer than this share of the products


@dataclass
class CrowdSettings:
    """``m5data annotate import / simulate / aggregate``, the crowd stage (docs/annotate.md "Crowd labels and GLAD")."""

    method: str = "glad"  # aggregation: glad, majority or dawid_skene
    accept: float = 0.5  # a pair is an accepted match when its probability of match is >= this
    max_iter: int = 200  # EM iterations at most (GLAD, Dawid-Skene)
    tol: float = 1e-6  # EM stops when the log-likelihood gains less than this (relative)
    uncertain: str = "skip"  # an "uncertain" judgement is skipped, or counted as "mismatch"
    workers_per_pair: int = 5  # simulate: judgements per pair (the papers' 5)
    workers: int = 40  # simulate: size of the simulated worker pool
    spammers: float = 0.15  # simulate: share of the workers who answer at random
    gold: float = 0.05  # simulate: share of pairs used as gold questions


@dataclass
class MatcherSettings:
    """``m5data annotate matcher train / score``, the matcher stage (docs/annotate.md "Matcher")."""

    precision: float = 0.9  # the saved threshold is the lowest whose held-out pairs reach this precision
    folds: int = 5  # cross-validation folds (grouped by product) the threshold is chosen on
    trees: int = 400  # boosting iterations of the gradient-boosted trees
    learning_rate: float = 0.05  # boosting learning rate
    leaves: int = 31  # leaves per tree at most


# ---------------------------------------------------------------------------------------------


@dataclass
class SplitsSettings:
    """``m5data build-splits`` (docs/splits.md): proportions follow the papers unless set here."""

    seed: int = 0  # seed of the split assignment (hash salt)
    version: str = "v1"  # split version built / checked when --version is not given
    # Sizes: a count ("24410"), a fraction of the store's products ("0.003867") or, for train, "rest".
    # Defaults are the paper's sizes over its 6,313,067 products (supplementary D).
    train: str = "rest"  # rest = every product not in an evaluation split (the paper's 4,423,160 = 0.7006)
    query_c: str = "0.003867"  # coarse queries: 24,410
    gallery_c: str = "0.189751"  # coarse gallery: 1,197,905 (249,614 matched + 948,291 distractors)
    query_fg: str = "0.000315"  # fine-grained (instance) queries: 1,991
    gallery_fg: str = "0.018669"  # fine-grained gallery: 117,858
    min_queries: int = 10  # floor for query-c and query-fg on small stores (when the pools allow)
    coarse_level: int = 3  # unified label level of a coarse match: 1 class, 2 sub-class, 3 subsub-class
    fg_classes: str = "6"  # level-1 class ids (comma-separated) of the fine-grained domain; 6 = cosmetics (MEP-3M)
    cls_classes: str = "0.2896"  # classification categories: 1,805 of the paper's 6,232 (count or share of eligible ones)
    cls_products: str = "0.003668"  # classification products: 23,158 (18,526 train + 4,632 test)
    cls_test: float = 0.2  # share of classification products in cls-test (4,632 / 23,158)
    cls_min_per_class: int = 5  # a category is eligible for classification with at least this many products
    cls_level: int = 3  # unified label level of a classification category
    subset: str = "0"  # products of train also in the smaller `subset` split (count or fraction of train); 0 = none
    # a pipeline run's next version carries its predecessor's plan (rates, sampled categories) while the
    # store's product count is within this share of the plan's; past it (or on --full) a fresh plan is made
    replan_share: float = 0.1
    memory_limit: str = "2GB"  # DuckDB memory limit while building (it spills to <store>/derived/splits/tmp beyond)
    threads: int = 0  # DuckDB threads; 0 = number of cores


# ---------------------------------------------------------------------------------------------


@dataclass
class ExportSettings:
    """``m5data export`` (docs/export.md): WebDataset, Hugging Face Parquet and M5Product layouts."""

    shard_size: int = 1000  # samples per shard (unless shard_bytes is set)
    shard_bytes: int = 0  # cut shards at about this many bytes of media instead; 0 = by shard_size
    workers: int = 0  # processes writing shards in parallel; 0 = one per core (inline under 500 samples), 1 = inline
    format: str = "webdataset"  # layout: webdataset, parquet, m5product (`m5data export --format`, the flow's export stage)
    split: str = "all"  # split exported (train, query-c, ...) or all (`m5data export --split`, the flow's export stage)
    mp3: bool = True  # include the mp3 soundtrack (WebDataset `mp3`, Parquet `mp3`, M5Product audios/)
    video: bool = True  # M5Product layout: copy the original video to videos/<id>.mp4
    blur_faces: bool = True  # blur the faces of the faces table in exported images and frames (the store keeps its media)
    blur_codes: bool = True  # blur the QR codes (contacts) of exported main images, found in image_codes or scanned at export
    # replace phone numbers, e-mail addresses and contact handles in titles, captions and spec values
    # by [PHONE], [EMAIL], [CONTACT] in every layout (the store keeps the original; docs/compliance.md)
    mask_personal_data: bool = True


# ---------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    """The flow's train stage (docs/train.md): the thin SCALE model; ``m5data train`` gives its own flags."""

    shards: str = ""  # WebDataset folder the train stage reads; "" = what the export stage of the run wrote
    out: str = ""  # run folder of the train stage; "" = m5data-train beside the store
    config: str = "small"  # model: small, paper or a TOML file (docs/train.md)
    epochs: int = 1  # passes over the train split
    max_steps: int = 0  # stop after this many steps (0 = no limit)


# ---------------------------------------------------------------------------------------------


@dataclass
class ReportSettings:
    """``m5data report`` (docs/report.md): the static HTML report."""

    samples_per_category: int = 3  # products per top category in the sample gallery (0 = no gallery)
    top: int = 15  # rows of the "top" tables (properties, alignment pairs)
    out: str = ""  # folder of the report stage's HTML report; "" = m5data-report beside the store (a store on S3: in the working directory)


# ---------------------------------------------------------------------------------------------


@dataclass
class FlowSettings:
    """``m5data run`` / ``serve`` (docs/flows.md): Prefect flows and task runners."""

    # what `m5data run` / `serve` / `deploy` run (flags override each)
    start_urls: str = ""  # crawl start URLs, comma-separated; "" = give --start-url (needed when crawl runs)
    stages: str = "crawl,download,extract,align,annotate,splits,export,report"  # stages run, always in this order (add train)
    refresh: bool = False  # crawl stored product pages again, so changed products are picked up
    full: bool = False  # global stages (align, splits, report) rebuild in full; false = only what changed (docs/flows.md)
    # scale-out: the per-item work of download and extract, in shards of the pending rows
    runner: str = "local"  # local (one process, no shards), dask or ray (shards fanned out to workers)
    shards: int = 0  # shards per sharded stage under dask/ray; 0 = one per worker (dask_workers)
    dask_address: str = ""  # a running Dask scheduler (tcp://host:8786); "" = a LocalCluster of dask_workers
    dask_workers: int = 2  # worker processes of the LocalCluster (one thread each)
    ray_address: str = ""  # a running Ray cluster (ray://host:10001); "" = a local Ray
    scheduler_timeout: float = 60.0  # seconds the Dask client waits for its scheduler (connect, answer) before the run fails
    # the Dask cluster's exposure (docs/security.md "The cluster"); TLS files are paths, never their contents
    dask_dashboard: str = ""  # host:port of the LocalCluster scheduler's dashboard (127.0.0.1:8787); "" = no HTTP server at all
    dask_local_tls: bool = True  # LocalCluster comms use TLS with a throwaway in-memory certificate: no other local user can connect
    dask_tls_ca_file: str = ""  # PEM CA file for a tls:// dask_address: the scheduler's certificate must be signed by it
    dask_tls_cert: str = ""  # PEM client certificate (signed by a CA the scheduler trusts) shown to a tls:// scheduler
    dask_tls_key: str = ""  # PEM private key of dask_tls_cert
    retry_delay: float = 30.0  # seconds before a transient failure (network, ffmpeg timeout) is retried once
    # `m5data server` / `serve` / `deploy`
    server_host: str = "127.0.0.1"  # address `m5data server start` binds
    server_port: int = 4200  # its port
    server_home: str = ""  # its PREFECT_HOME (SQLite database, logs, PID file); "" = <store>/prefect
    deployment: str = "m5data-pipeline"  # deployment name used by serve and deploy

