"""The sections of the settings: one dataclass per ``[section]`` of ``m5data.toml``, each field's default with
its meaning and unit (the one place where defaults are documented). Plain data: loading, layering and
validation live in :mod:`m5data.config`, which re-exports these classes.

Here the store's section, the shared sections (``[http]``, ``[text]``, ``[faces]``: values two stages must
agree on) and those of the stages that build it (crawl, download, extract, align); the
curation stages' sections and what follows them (splits, export, train, report, flows) are in
:mod:`m5data.config_curation`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StoreSettings:
    path: str = "./m5data-store"  # the store folder (tables/, blobs/, derived/, catalog.duckdb) or s3://bucket/prefix
    part_rows: int = 1_000_000  # rows per Parquet part when compacting
    compression: str = "zstd"  # Parquet codec: zstd, snappy, gzip, none
    lease_seconds: float = 600.0  # s3:// store: seconds a compact/replace lease holds a table before another may take it
    garbage_grace: float = 86400.0  # s3:// store: seconds before an uncommitted part object counts as garbage


# ---------------------------------------------------------------------------------------------
# shared sections: a value two stages must agree on lives in one of these, never in either stage's own
# section (a stage reads its own section and these only: tests/contract/test_own_section.py)


@dataclass
class HttpSettings:
    """What every stage that fetches from the web sends alike (crawl, download)."""

    user_agent: str = "m5data/0.1 (+dataset builder; respects robots.txt)"  # User-Agent header (robots.txt rules and opt-outs match its first token); was crawl.user_agent


@dataclass
class TextSettings:
    """What a caption is, alike in every stage that makes one from a title (extract's captions; the pools'
    captions of titles extract has not captioned, and their text block): cleaning, cut, segmentation."""

    strip_brackets: bool = False  # strip 【...】 marketing brackets from captions; was extract.strip_brackets
    max_caption_chars: int = 512  # captions are cut to this many characters; was extract.max_caption_chars
    jieba_user_dict: str = ""  # jieba user dictionary file (brand names), "" = none; was extract.jieba_user_dict


@dataclass
class FacesSettings:
    """The one policy of the ``faces`` table, whichever stage writes its rows (extract; export for the media extract left without)."""

    frames: str = "changed"  # frames of a folder face detection looks at: all, or changed (not a frame unchanged from the last one looked at, after a frame without a face); was extract.face_frames


@dataclass
class ReviewSettings:
    """Where align's review file is: align writes it, the report shows it. A shared value rather than the
    report reading the path align's ``runs`` row recorded: a path read from the store could point the
    report at any file of the machine it runs on (the store is not trusted to name local files)."""

    file: str = ""  # review file written by align and shown by the report; "" = <store>/derived/align/review.csv; was align.review_file


# ---------------------------------------------------------------------------------------------


@dataclass
class CrawlSettings:
    obey_robots: bool = True
    concurrency: int = 16  # Scrapy CONCURRENT_REQUESTS
    per_domain: int = 8  # Scrapy CONCURRENT_REQUESTS_PER_DOMAIN
    download_delay: float = 0.0  # seconds between requests to one domain (AutoThrottle adapts above it)
    autothrottle: bool = True
    max_pages: int = 0  # send at most this many page requests (robots.txt included, tdmrep.json not); 0 = no limit
    max_depth: int = 0  # Scrapy DEPTH_LIMIT; 0 = no limit
    timeout: float = 30.0  # seconds per page request
    batch_rows: int = 500  # items buffered before a store write
    allow_private: bool = False  # crawl hosts on loopback / private / link-local addresses (the demo shop needs it)
    render: bool = False  # re-fetch pages whose product data scripts fill in through headless Chromium (scrapy-playwright)
    render_timeout: float = 30.0  # seconds a rendered page may take (navigation until the network is idle)
    # a refresh (--refresh) sends each stored product page's ETag / Last-Modified back (If-None-Match /
    # If-Modified-Since): a 304 is an unchanged product, no body sent, nothing written. false = plain GETs
    revalidate: bool = True
    # what a shop may ask of the crawl (docs/crawl.md, "What the crawl honours"): Retry-After on 429/503
    # pauses the whole host, robots.txt's Crawl-delay spaces its requests; the caps bound what a shop can make us wait
    max_retry_after: float = 60.0  # seconds: the longest pause a Retry-After gets (a longer one is cut to this)
    max_crawl_delay: float = 30.0  # seconds: the longest Crawl-delay honoured (a longer one is cut to this)
    crawl_delay: float = -1.0  # seconds between requests to a host whose robots.txt asks a Crawl-delay, instead of it; < 0 = robots.txt's value
    # bytes of one page body, counted inflated (Scrapy's DOWNLOAD_MAXSIZE; its own default is 1 GiB): a
    # page over it is refused with a "page too large" crawl_errors row. 16 pages may be in flight and a
    # parsed page takes several times its size; the largest saved real product page (Amazon) is 2.3 MB
    max_page_bytes: int = 20 * 2**20
    # a logged-in session (docs/crawl.md "Giving the crawl a session"); secrets: never stored, never logged
    cookies_file: str = ""  # Netscape cookies.txt (curl -c, a browser's cookies.txt export) sent to the hosts of its cookies; "" = none
    headers: str = ""  # request headers per host, JSON {"host" | "host:port" | ".domain": {"Header": "value"}}; "" = none
    # caps on what one page may store (a hostile page's 5 MB title, 60,000 spec rows); a cut leaves a
    # "capped: ..." crawl_errors row and the product is still stored. The saved real pages (Amazon,
    # AliExpress, JSON-LD shops) reach at most: title 186, spec property 35, value 69, 22 spec rows,
    # 6 images, 10 videos, URL 158, 4 category levels, id 17: the defaults leave ample room.
    max_title_chars: int = 1000  # title
    max_description_chars: int = 20_000  # description (schema.org / og:description)
    max_property_chars: int = 200  # a spec property name; a category label
    max_value_chars: int = 2000  # a spec value; a media detail (media.meta) string
    max_id_chars: int = 200  # source id, merchant id, currency; a longer id is cut and ends with a hash of the whole id
    max_url_chars: int = 2083  # a media URL (a longer one is dropped, not cut), the page URL (longer: not stored), links followed
    max_specs: int = 500  # spec rows per product (the first ones are kept)
    max_media: int = 200  # image URLs, and video URLs, per product
    max_crumbs: int = 20  # category levels per product
    # owners' opt-outs (docs/compliance.md "Opt-outs"): a product page that states one is not stored
    optout_directives: str = "noai,noimageai,noindex,noimageindex"  # X-Robots-Tag directives that opt a page out (comma-separated); "" = none
    tdmrep: bool = True  # honour W3C TDMRep: the tdm-reservation header and meta, and each host's /.well-known/tdmrep.json


@dataclass
class DownloadSettings:
    concurrency: int = 64  # requests in flight, all hosts together
    per_host: int = 16  # requests in flight to one host
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds between two chunks
    request_deadline: float = 300.0  # seconds for one whole request, body included
    url_deadline: float = 600.0  # seconds for one URL, all attempts and retry waits together (bounds the run)
    min_rate: int = 1024  # bytes/s a transfer must keep over every rate_window (slow-loris guard); 0 = off
    rate_window: float = 30.0  # seconds over which min_rate is measured
    retries: int = 3  # extra attempts for 5xx / 429 / timeouts
    backoff: float = 0.5  # first backoff in seconds; doubles each attempt, with jitter
    max_redirects: int = 5
    max_image_bytes: int = 20_000_000
    max_video_bytes: int = 500_000_000
    allow_private: bool = False  # allow hosts on loopback / private / link-local addresses
    image_max_side: int = 0  # re-encode images to this max side on the way in; 0 = keep the original
    jpeg_quality: int = 90
    max_failure_rate: float = 0.2  # exit non-zero when more than this share of URLs failed
    stall_timeout: float = 120.0  # watchdog: end the run when nothing finished for this many seconds
    workers: int = 0  # threads / processes that re-encode images (when image_max_side > 0; download.pool); 0 = number of cores
    pool: str = "mixed"  # re-encode JPEGs of the fast path in threads, the rest in processes ("mixed"), all in a "process" pool, or all in a "thread" pool
    send_referer: bool = True  # send the product's page URL as Referer, as a browser would (CDNs that refuse hotlinking answer 403 without it)
    store_retry_seconds: float = 60.0  # how long a store outage (endpoint down, 5xx, disk full) is waited out before the run ends; 0 = not at all
    # owners' opt-outs (docs/compliance.md "Opt-outs"): a media file that states one is not stored (status opted_out)
    optout_directives: str = "noai,noimageai,noindex,noimageindex"  # X-Robots-Tag directives that opt a file out (comma-separated); "" = none
    tdmrep: bool = True  # honour W3C TDMRep: the tdm-reservation header and each media host's /.well-known/tdmrep.json
    obey_robots: bool = True  # fetch no URL (a file or a redirect hop) its host's robots.txt disallows for http.user_agent's token (once per host and run)


@dataclass
class ExtractSettings:
    workers: int = 0  # processes; 0 = number of cores
    kinds: str = "video,audio,image,text"  # what extract produces (comma-separated; `m5data extract --kinds`, `m5data run --kinds`)
    frame_fps: float = 1.0  # frames sampled per second of video
    frame_max_side: int = 720  # resize frames inside the ffmpeg pass to this longer side (never enlarged); 0 = keep
    jpeg_quality: int = 90
    max_duration: float = 300.0  # seconds of video (frames and sound) processed at most; the rest is cut
    max_frames: int = 300  # frames per video at most (300 s at 1 fps); the rest is cut
    max_item_bytes: int = 64_000_000  # bytes one item may write, all outputs together (frames, mp3, MFCC); past it frames are cut
    max_video_pixels: int = 33_177_600  # width x height of a video frame (8K UHD); larger is refused from the probe, never decoded
    video_timeout: float = 300.0  # seconds for one video's ffmpeg pass
    video_decode: str = "fast"  # frame pass: exact (ffprobe + the ffmpeg CLI, every frame), fast (in-process, only the frames the kept seconds need: the exact pixels), fastest (fast without deblocking)
    sample_rate: int = 22050  # Hz for MFCC
    n_mfcc: int = 40
    n_fft: int = 1024  # MFCC frame size (M5Product)
    hop_length: int = 256  # MFCC hop (M5Product)
    image_max_side: int = 800
    max_image_pixels: int = 89_478_485  # Pillow's decompression-bomb limit
    image_tier_high: int = 600  # quality tier 1 (high): original's shorter side >= this many pixels
    image_tier_medium: int = 300  # tier 2 (medium) >= this; tier 3 (low) below
    image_roles: str = "main"  # comma-separated media roles whose images are normalised ("main,gallery")
    detect_faces: bool = True  # find faces in normalised images and frames (the faces table; export blurs them)
    mp3_bitrate: str = "128k"  # bitrate of the extracted mp3


@dataclass
class VisionSettings:
    """The vision stage (m5data/vision): image features of the normalised product images."""

    model: str = "efficientnet-lite0"  # the built-in ImageNet backbone, or a local .pt2 / TorchScript file of your own
    image_size: int = 224  # pixels: each picture is shown to the model at this side
    batch: int = 16  # pictures per model call
    threads: int = 0  # torch's CPU threads; 0 = torch's default (the cores)
    max_bytes: int = 20_000_000  # bytes of one picture at most; larger is refused for that item
    max_pixels: int = 89_478_485  # width x height of one picture at most (Pillow's decompression-bomb limit)
    write_rows: int = 512  # rows per write: what a killed run loses at most


@dataclass
class AlignSettings:
    label_threshold: float = 0.50  # S_label >= this (MEP-3M)
    content_threshold: float = 0.75  # S_content > this (MEP-3M)
    content_chars: int = 22_000  # characters of concatenated titles per sub-class (MEP-3M)
    mapping: str = ""  # level-1 mapping file (TOML/YAML); required when align runs (`--mapping` of `m5data align` / `run`)
    engine: str = "bulk"  # S_content engine: bulk (sparse matrix) or simtext (the library, pair by pair)
    weighting: str = "binary"  # binary (simtext's Sim_Cosine) or counts (the paper's term frequencies)
    merge_empty_by_name: bool = False  # merge identically named sub-classes even when one has no titles
    workers: int = 1  # processes for jieba segmentation; 0 = number of cores
