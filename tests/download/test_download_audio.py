"""Audio inputs: `download --kind audio` for URL lists, audio bodies sniffed and stored by format."""

import pytest
from support.media_samples import SAMPLES, make_sample
from support.media_server import MediaServer, jpeg_bytes, media_rows
from typer.testing import CliRunner

from m5data.cli import app

runner = CliRunner()
AUDIO = ["tone.mp3", "bare.mp3", "tone.aac", "tone.m4a", "tone.ogg", "tone.opus", "tone.flac", "tone.wav",
         "audio_only.webm"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    files = {name: make_sample(folder, name).read_bytes() for name in [*AUDIO, "theora.ogv"]}
    files["photo.jpg"] = jpeg_bytes(64, 48)
    with MediaServer(files) as srv:
        yield srv


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), "--set", "download.allow_private=true", "download",
                               "--no-progress", *args])


def test_url_list_of_audio_files(server, store, tmp_path):
    urls = {name: server.url(f"/f/{name}") for name in AUDIO}
    listing = tmp_path / "audio.txt"
    listing.write_text("\n".join([*urls.values(), server.url("/f/photo.jpg")]) + "\n")
    result = m5(store, str(listing), "--kind", "audio", "--max-failure-rate", "1")
    assert result.exit_code == 0, result.output
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    for name, url in urls.items():
        row = rows[url]
        mime, ext = SAMPLES[name][3:]
        assert (row["kind"], row["role"], row["status"], row["mime"]) == ("audio", "audio", "ok", mime), row
        assert row["blob"].endswith("." + ext) and store.blobs.path(row["blob"]).is_file()
    photo = rows[server.url("/f/photo.jpg")]
    assert photo["status"] == "not_media" and "expected audio, body is image/jpeg" in photo["error"]


def test_video_rows_take_ogg_theora_and_audio_only_bodies(server, store):
    theora, mp3 = server.url("/f/theora.ogv"), server.url("/f/tone.mp3")
    store.write("media", media_rows([theora, mp3], kind="video"))
    assert m5(store).exit_code == 0
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    assert (rows[theora]["status"], rows[theora]["mime"]) == ("ok", "video/ogg")
    # a product video that is only a soundtrack: stored; extract takes its audio, the picture is absent
    assert (rows[mp3]["status"], rows[mp3]["mime"]) == ("ok", "audio/mpeg")


def test_image_rows_refuse_audio_and_derived_audio_rows_are_never_fetched(server, store):
    mp3 = server.url("/f/tone.mp3")
    store.write("media", media_rows([mp3], kind="image", product_id="p:1"))
    derived = {"media_id": "d" * 40, "product_id": "p:1", "kind": "audio", "role": "derived",
               "source_media_id": "v" * 40, "status": "failed", "error": "audio extraction failed"}
    store.write("media", [derived])
    server.clear()
    assert m5(store, "--max-failure-rate", "1").exit_code == 0
    assert m5(store, "--retry-failed", "--max-failure-rate", "1").exit_code == 0  # the derived row is extract's
    rows = {r["media_id"]: r for r in store.read("media").to_pylist()}
    image = next(r for r in rows.values() if r["url"] == mp3)
    assert image["status"] == "not_media" and "expected image, body is audio/mpeg" in image["error"]
    assert rows["d" * 40]["status"] == "failed" and rows["d" * 40]["attempts"] in (None, 0)
    assert server.requests == ["/f/tone.mp3"]
