"""Against a real server on loopback: schemathesis over the live OpenAPI document, the web page in
headless Chromium, a bounded overload burst, and a request whose client left before its batch ran
never reaching the model."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from encoders import load_encoder
from encoders.house import default_house_dir
from generation.decoder import has_decoder
from runtime.container import Runtime
from runtime.settings import Settings
from service.runner import running


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_clip_dir):
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path_factory.mktemp("live"),
                      demo=False, max_wait_ms=2, max_items=32)  # fmt: skip
    with running(s) as url:
        yield url


def test_schemathesis_finds_no_contract_failure():
    """bench/contract.py: schemathesis over the live document with every contract check (server
    errors, status codes, content types, response schemas, refused invalid data, unsupported
    methods, Allow headers), the coverage, fuzzing and stateful phases, seed 0, 60 s."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "contract.py"
    out = subprocess.run([sys.executable, str(bench), "--max-time", "60"], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    summary = re.search(r"schemathesis exit (\d+); (\d+) test cases; (\d+) unique failures",
                        out.stdout)  # fmt: skip
    assert summary, out.stdout + out.stderr[-2000:]
    assert int(summary[2]) > 500, out.stdout
    assert (summary[1], summary[3]) == ("0", "0"), out.stdout


def png(colour) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20)}


def squares_collection(url: str, name: str, per_colour: int) -> None:
    """A collection of plain red, blue and green squares, their colour in metadata."""
    httpx.post(f"{url}/collections", json={"name": name}).raise_for_status()
    items = [{"id": f"{n}-{i}", "image": png(c), "metadata": {"colour": n}}
             for n, c in COLOURS.items() for i in range(per_colour)]  # fmt: skip
    httpx.put(f"{url}/collections/{name}/items", json={"items": items},
              timeout=60).raise_for_status()  # fmt: skip


def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1200,900", f"--user-data-dir={tmp_path / 'p'}",
                 # a synthetic microphone (a beeping tone), granted without a prompt
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


NO_CHROMIUM = not shutil.which("chromedriver")


def open_page(driver, url: str, collection: str):
    """The page at `url` with `collection` chosen once the list has it; returns a 30 s wait."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    wait = WebDriverWait(driver, 30)
    option = f"#collection option[value='{collection}']"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, option))
    driver.find_element(By.ID, "collection").send_keys(collection)
    return wait


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_web_page_in_headless_chromium(live, tmp_path):
    from selenium.webdriver.common.by import By

    squares_collection(live, "page", 3)

    driver = chromium(tmp_path)
    try:
        wait = open_page(driver, live, "page")
        driver.find_element(By.ID, "text").send_keys("a red square")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit img")) == 9)
        imgs = driver.find_elements(By.CSS_SELECTOR, ".hit img")
        assert all(i.get_attribute("src").startswith(live + "/media/page/") for i in imgs)
        wait.until(lambda d: all(i.get_property("naturalWidth") > 0 for i in imgs))  # they loaded
        assert "9 results" in driver.find_element(By.ID, "status").text
        driver.find_elements(By.CSS_SELECTOR, ".hit")[0].click()  # "like this"
        wait.until(lambda d: "8 results" in d.find_element(By.ID, "status").text)
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_switches_to_keyword_search(live, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    httpx.post(f"{live}/collections", json={"name": "words", "text_fields": ["colour"]})
    items = [{"id": f"{n}-{i}", "image": png(c), "metadata": {"colour": n}}
             for n, c in COLOURS.items() for i in range(2)]  # fmt: skip
    httpx.put(f"{live}/collections/words/items", json={"items": items}, timeout=60)
    driver = chromium(tmp_path)
    try:
        wait = open_page(driver, live, "words")
        Select(driver.find_element(By.ID, "mode")).select_by_value("keyword")
        driver.find_element(By.ID, "text").send_keys("green")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: "2 results" in d.find_element(By.ID, "status").text)
        hits = driver.find_elements(By.CSS_SELECTOR, ".hit")
        assert sorted(h.get_attribute("data-id") for h in hits) == ["green-0", "green-1"]
        assert all(h.find_element(By.CSS_SELECTOR, ".score").text.endswith(" k") for h in hits)
        Select(driver.find_element(By.ID, "mode")).select_by_value("hybrid")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: "6 results" in d.find_element(By.ID, "status").text)
        marks = [h.text for h in driver.find_elements(By.CSS_SELECTOR, ".hit .score")]
        assert sum(m.endswith(" v+k") for m in marks) == 2 and len(marks) == 6
    finally:
        driver.quit()


def held_model(tiny_clip_dir: str):
    """The tiny CLIP, whose text call for "first" blocks until `release` is set."""
    enc = load_encoder(f"hf:{tiny_clip_dir}", device="cpu")
    seen: list[list[str]] = []
    release = threading.Event()
    real = enc.encode_text

    def encode_text(texts, *args, **kwargs):
        seen.append(list(texts))
        if texts[0] == "first":
            release.wait(30)
        return real(texts, *args, **kwargs)

    enc.encode_text = encode_text
    return enc, seen, release


async def until(check, timeout: float = 20) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        assert time.perf_counter() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_overload_burst_gets_429_never_500_and_recovers(tmp_path, tiny_clip_dir):
    """A bounded burst with the model held: exactly what the queue holds is served, the rest is
    refused at once with 429; then everything is served again. Each burst request has its own
    connection, opened for it, so no outcome depends on reusing a kept-alive one."""
    enc, seen, release = held_model(tiny_clip_dir)
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      max_batch=4, queue_size=8, max_items=8, max_queue_wait_ms=60_000)  # fmt: skip
    with running(s, Runtime(s, encoder=enc)) as url:

        async def post(text: str) -> int | str:
            async with httpx.AsyncClient(timeout=30) as c:
                try:
                    r = await c.post(f"{url}/embed", json={"texts": [text]})
                except httpx.HTTPError as e:
                    return type(e).__name__
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "1"
                    assert r.json()["error"]["message"].startswith(
                        "the server is busy: 8 inputs are queued (limit 8)"
                    )
                return r.status_code

        async def go() -> None:
            first = asyncio.create_task(post("first"))
            await until(lambda: seen)  # the model holds "first"
            burst = [asyncio.create_task(post(f"a red dress number {i}")) for i in range(40)]
            await until(lambda: sum(t.done() for t in burst) == 32)  # the refusals are at once
            release.set()
            codes = [await first] + [await t for t in burst]
            assert sorted(codes, key=str).count(200) == 9 and codes.count(429) == 32
            assert [len(b) for b in seen] == [1, 4, 4]  # the queued eight, in full batches
            after = [await post(f"after {i}") for i in range(10)]
            assert after == [200] * 10

        asyncio.run(go())


def test_past_the_door_limit_requests_wait_then_get_429_unparsed(tmp_path, tiny_clip_dir):
    enc, seen, release = held_model(tiny_clip_dir)
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      max_concurrent_requests=2, max_queue_wait_ms=2000)  # fmt: skip
    with running(s, Runtime(s, encoder=enc)) as url:

        async def go() -> None:
            async with httpx.AsyncClient(timeout=30) as c:
                body = {"texts": ["first"]}
                first = asyncio.create_task(c.post(f"{url}/embed", json=body))
                await until(lambda: seen)
                second = asyncio.create_task(c.post(f"{url}/embed", json={"texts": ["second"]}))
                await asyncio.sleep(0.1)
                r = await c.post(f"{url}/embed", content=b"not even JSON",
                                 headers={"content-type": "application/json"})  # fmt: skip
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                assert r.json()["error"] == {"type": "overloaded", "code": 429, "message": (
                    "the server is busy: 2 requests are in progress and none ended within "
                    "1.0 s; retry in 1 s")}  # fmt: skip
                metrics = (await c.get(f"{url}/metrics")).text  # reads pass the door
                assert "jointspace_door_refused_total 1.0" in metrics
                assert "jointspace_requests_in_progress 2.0" in metrics
                release.set()
                assert (await first).status_code == 200 and (await second).status_code == 200
                r = await c.post(f"{url}/embed", json={"texts": ["after"]})
                assert r.status_code == 200

        asyncio.run(go())


def test_request_whose_client_left_never_reaches_the_model(tmp_path, tiny_clip_dir):
    enc, seen, release = held_model(tiny_clip_dir)  # "first" holds the model: the next waits
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      max_batch=1, max_wait_ms=0)  # fmt: skip
    with running(s, Runtime(s, encoder=enc)) as url:

        async def go() -> None:
            async with httpx.AsyncClient(timeout=30) as c:
                first = asyncio.create_task(c.post(f"{url}/embed", json={"texts": ["first"]}))
                while not seen:
                    await asyncio.sleep(0.01)
                with pytest.raises(httpx.ReadTimeout):  # the client gives up and hangs up
                    await c.post(f"{url}/embed", json={"texts": ["abandoned"]}, timeout=0.5)
                await asyncio.sleep(0.3)
                release.set()
                assert (await first).status_code == 200
                after = await c.post(f"{url}/embed", json={"texts": ["after"]})
                assert after.status_code == 200

        asyncio.run(go())
    assert seen == [["first"], ["after"]]


def test_a_request_past_its_queue_wait_budget_gets_429_not_500(tmp_path, tiny_clip_dir):
    enc, _, release = held_model(tiny_clip_dir)
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path, demo=False,
                      max_batch=1, max_wait_ms=0, max_queue_wait_ms=300)  # fmt: skip
    with running(s, Runtime(s, encoder=enc)) as url:

        async def go() -> None:
            async with httpx.AsyncClient(timeout=30) as c:
                first = asyncio.create_task(c.post(f"{url}/embed", json={"texts": ["first"]}))
                await asyncio.sleep(0.2)
                late = asyncio.create_task(c.post(f"{url}/embed", json={"texts": ["late"]}))
                await asyncio.sleep(0.6)  # "late" waits in the queue past its 300 ms budget
                release.set()
                assert (await first).status_code == 200
                r = await late
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                assert r.json()["error"]["type"] == "overloaded"
                assert r.json()["error"]["message"].startswith("the server is busy: the request "
                                                               "waited 0.")  # fmt: skip
                assert (await c.post(f"{url}/embed", json={"texts": ["after"]})).status_code == 200
                metrics = (await c.get(f"{url}/metrics")).text
                model = f'model="hf:{tiny_clip_dir}"'
                assert (
                    f'jointspace_shed_total{{modality="text",{model},reason="expired"}} 1.0'
                    in metrics
                )

        asyncio.run(go())


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_classifies_a_dropped_image_with_a_trained_classifier(live, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    squares_collection(live, "kinds", 5)
    body = {"name": "colours", "collection": "kinds", "label_field": "colour", "fusion": "late"}
    assert httpx.post(f"{live}/classifiers", json=body).status_code == 202
    for _ in range(600):
        state = httpx.get(f"{live}/classifiers/colours").json()["status"]
        if state != "training":
            break
        time.sleep(0.1)
    assert state == "ready"
    picture = tmp_path / "red.png"
    picture.write_bytes(base64.b64decode(png(COLOURS["red"])))

    driver = chromium(tmp_path)
    try:
        driver.get(live + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#classifier option[value='colours']")
        )
        Select(driver.find_element(By.ID, "classifier")).select_by_value("colours")
        driver.find_element(By.ID, "file").send_keys(str(picture))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))
        driver.find_element(By.ID, "classify").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#labels span")) == 3)
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#labels span")]
        assert labels[0].startswith("red ") and labels[0].endswith("%")
        assert sorted(t.split()[0] for t in labels) == ["blue", "green", "red"]
        assert driver.find_element(By.ID, "status").text == "classified by colours"
    finally:
        driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_captions_a_dropped_image(tmp_path, captioned_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    s = Settings.load({}, model=f"house:{captioned_dir}", data_dir=tmp_path / "data", demo=False,
                      max_wait_ms=2)  # fmt: skip
    picture = tmp_path / "red.png"
    picture.write_bytes(base64.b64decode(png((220, 20, 20))))
    with running(s) as url:
        item = {"type": "image", "image": png((220, 20, 20))}
        want = httpx.post(f"{url}/caption", json={"input": [item]}, timeout=60).json()
        driver = chromium(tmp_path)
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 30)
            driver.find_element(By.ID, "file").send_keys(str(picture))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))
            driver.find_element(By.ID, "caption").click()
            wait.until(lambda d: d.find_elements(By.ID, "caption-text"))
            assert driver.find_element(By.ID, "caption-text").text == want["data"][0]["caption"]
            assert driver.find_element(By.ID, "status").text == f"caption by {want['model']}"
        finally:
            driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
@pytest.mark.skipif(not has_decoder(default_house_dir() / "decoder"), reason="no house decoder")
def test_page_previews_a_query_with_its_modification(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    s = Settings.load({}, model="house", data_dir=tmp_path / "data", demo=False, max_wait_ms=2)
    with running(s) as url:
        httpx.post(f"{url}/collections", json={"name": "shop"}).raise_for_status()
        body = {"prompt": "a red dress", "modification": "in blue instead of red", "n": 4,
                "seed": 0}  # fmt: skip
        want = httpx.post(f"{url}/generate", json=body, timeout=60).json()["data"]
        driver = chromium(tmp_path)
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 30)
            driver.find_element(By.ID, "text").send_keys("a red dress")
            driver.find_element(By.ID, "mod").send_keys("in blue instead of red")
            driver.find_element(By.ID, "preview-btn").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#previews img")) == 4)
            got = [
                e.get_attribute("src")
                for e in driver.find_elements(By.CSS_SELECTOR, "#previews img")
            ]
            assert got == [f"data:image/png;base64,{d['b64_json']}" for d in want]
            assert driver.find_element(By.ID, "status").text == "4 previews drawn"
        finally:
            driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_with_keys_loads_signed_thumbnails_and_escapes_user_strings(tmp_path, tiny_clip_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key = "p" * 24
    auth = {"authorization": f"Bearer {key}"}
    evil_id = '"><img src=x onerror="window.pwned=1">'
    s = Settings.load({}, model=f"hf:{tiny_clip_dir}", data_dir=tmp_path / "data", demo=False,
                      max_wait_ms=2, api_keys=[key])  # fmt: skip
    with running(s) as url:
        httpx.post(f"{url}/collections", json={"name": "page"}, headers=auth).raise_for_status()
        items = [{"id": evil_id, "image": png((220, 20, 20)), "metadata": {"caption": "<b>bold</b>"}},
                 {"id": "plain", "image": png((20, 20, 220))}]  # fmt: skip
        httpx.put(f"{url}/collections/page/items", json={"items": items}, headers=auth,
                  timeout=60).raise_for_status()  # fmt: skip
        driver = chromium(tmp_path)
        try:
            driver.get(url + "/")
            driver.execute_script(f"localStorage.setItem('jointspace-key', '{key}')")
            driver.get(url + "/")
            wait = WebDriverWait(driver, 30)
            wait.until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option[value='page']")
            )
            driver.find_element(By.ID, "text").send_keys("a red square")
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit")) == 2)
            imgs = driver.find_elements(By.CSS_SELECTOR, ".hit img")
            assert len(imgs) == 2 and all("&sig=" in i.get_attribute("src") for i in imgs)
            wait.until(lambda d: all(i.get_property("naturalWidth") > 0 for i in imgs))  # signed
            metas = [m.text for m in driver.find_elements(By.CSS_SELECTOR, ".hit .meta")]
            assert sorted(metas) == ["<b>bold</b>", "plain"]  # shown as text, not markup
            ids = [
                h.get_attribute("data-id") for h in driver.find_elements(By.CSS_SELECTOR, ".hit")
            ]
            assert sorted(ids) == sorted([evil_id, "plain"])
            assert driver.execute_script("return window.pwned") is None
            assert driver.find_elements(By.CSS_SELECTOR, ".hit b, img[src='x']") == []
        finally:
            driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_web_page_audio_query_and_playable_results(tmp_path, tiny_clap_dir, tone):
    """A sound file chosen on the page searches a collection of sounds; the results are audio
    players whose clips the server serves."""
    from selenium.webdriver.common.by import By

    from encoders.audio import encode_audio

    s = Settings.load({}, model=f"hf:{tiny_clap_dir}", data_dir=tmp_path / "data", demo=False,
                      max_wait_ms=2)  # fmt: skip
    clips = {
        f"tone-{f}": encode_audio(tone(1.0, 16_000, f), 16_000, "WAV") for f in (200, 500, 900)
    }
    query = tmp_path / "query.wav"
    query.write_bytes(clips["tone-500"])
    with running(s) as live:
        httpx.post(f"{live}/collections", json={"name": "sounds"}).raise_for_status()
        items = [{"id": k, "audio": "data:audio/wav;base64," + base64.b64encode(v).decode(),
                  "metadata": {"caption": k}} for k, v in clips.items()]  # fmt: skip
        httpx.put(
            f"{live}/collections/sounds/items", json={"items": items}, timeout=60
        ).raise_for_status()
        driver = chromium(tmp_path)
        try:
            wait = open_page(driver, live, "sounds")
            driver.find_element(By.ID, "file").send_keys(str(query))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview audio"))
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit audio")) == 3)
            assert (
                driver.find_elements(By.CSS_SELECTOR, ".hit")[0].get_attribute("data-id")
                == "tone-500"
            )
            srcs = [
                a.get_attribute("src") for a in driver.find_elements(By.CSS_SELECTOR, ".hit audio")
            ]
            assert all(
                src.startswith(live + "/media/sounds/") and src.endswith(".wav") for src in srcs
            )
            first = httpx.get(srcs[0])
            assert (
                first.headers["content-type"] == "audio/wav" and first.content == clips["tone-500"]
            )
            assert "3 results" in driver.find_element(By.ID, "status").text

            # the microphone: record, stop, and the recording (as WAV) is the next query
            preview = "return (document.querySelector('#preview audio') || {}).src || ''"
            before = driver.execute_script(preview)  # the uploaded file's
            driver.find_element(By.ID, "record").click()
            wait.until(lambda d: d.find_element(By.ID, "record").text == "Stop")
            time.sleep(1.5)
            driver.find_element(By.ID, "record").click()
            wait.until(lambda d: d.execute_script(preview) not in ("", before))
            src = driver.execute_script(preview)
            assert src.startswith("data:audio/wav;base64,")
            wav = base64.b64decode(src.split(",", 1)[1])
            assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 44 + 2 * 8000
            driver.execute_script("document.getElementById('status').textContent = ''")
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: d.find_element(By.ID, "status").text not in ("", "searching..."))
            assert "3 results" in driver.find_element(By.ID, "status").text
        finally:
            driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_adds_a_video_finds_its_moments_and_plays_one(live, tmp_path):
    """A video chosen on the page is added to the collection; a text search shows its segments
    with their time ranges and thumbnails; a segment's play button plays the video from there;
    one hit per video groups them."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from housedata.writer import write_video

    frames = [np.full((48, 64, 3), c, np.uint8) for c in ((200, 30, 30), (30, 30, 200))
              for _ in range(24)]  # fmt: skip
    film = tmp_path / "film.webm"
    film.write_bytes(write_video(frames, 8, "WebM"))  # 6 s: segments 0-4 and 4-6
    httpx.post(f"{live}/collections", json={"name": "films"}).raise_for_status()
    driver = chromium(tmp_path)
    try:
        wait = open_page(driver, live, "films")
        driver.find_element(By.ID, "file").send_keys(str(film))
        wait.until(lambda d: d.find_element(By.ID, "addvideo").is_displayed())
        driver.find_element(By.ID, "addvideo").click()
        wait.until(lambda d: "added film.webm to films: 2 segments" in
                   d.find_element(By.ID, "status").text)  # fmt: skip
        driver.find_element(By.ID, "text").send_keys("a red square")
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit")) == 3)
        plays = driver.find_elements(By.CSS_SELECTOR, ".hit .play")
        assert sorted(p.text for p in plays) == ["▶ 0:00-0:04", "▶ 0:04-0:06"]
        thumbs = driver.find_elements(By.CSS_SELECTOR, ".hit img")
        assert len(thumbs) == 2 and all(".png" in t.get_attribute("src") for t in thumbs)
        assert len(driver.find_elements(By.CSS_SELECTOR, ".hit video")) == 1  # the whole video
        second = next(p for p in plays if p.text.endswith("0:04-0:06"))
        second.click()
        wait.until(lambda d: d.find_elements(By.ID, "playing"))
        src = driver.find_element(By.ID, "playing").get_attribute("src")
        assert src.startswith(live + "/media/films/") and src.endswith(".webm#t=4,6")
        wait.until(lambda d: d.execute_script(
            "return document.getElementById('playing').currentTime") >= 4.0)  # fmt: skip
        driver.find_element(By.ID, "byvideo").click()
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit")) == 1)
    finally:
        driver.quit()


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium-driver is not installed")
def test_page_model_picker_follows_the_collection(tmp_path, tiny_clip_dir, tiny_siglip_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    clip, siglip = f"hf:{tiny_clip_dir}", f"hf:{tiny_siglip_dir}"
    s = Settings.load({}, models=[clip, siglip], data_dir=tmp_path / "data", demo=False,
                      max_wait_ms=2)  # fmt: skip
    with running(s) as url:
        for name, model in (("a-clip", clip), ("b-siglip", siglip)):
            httpx.post(f"{url}/collections", json={"name": name, "model": model}).raise_for_status()
            httpx.put(f"{url}/collections/{name}/items", timeout=60,
                      json={"items": [{"id": "red", "image": png((220, 20, 20))}]}
                      ).raise_for_status()  # fmt: skip
        driver = chromium(tmp_path)
        try:
            wait = open_page(driver, url, "b-siglip")
            picker = Select(driver.find_element(By.ID, "model"))
            wait.until(lambda d: len(picker.options) == 2)
            Select(driver.find_element(By.ID, "collection")).select_by_value("b-siglip")
            assert picker.first_selected_option.get_attribute("value") == siglip
            driver.find_element(By.ID, "text").send_keys("a red square")
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: "1 results" in d.find_element(By.ID, "status").text)
            Select(driver.find_element(By.ID, "collection")).select_by_value("a-clip")
            assert picker.first_selected_option.get_attribute("value") == clip
            picker.select_by_value(siglip)  # another model than the collection's is refused
            driver.find_element(By.ID, "go").click()
            want = f"collection 'a-clip' holds vectors of model '{clip}', not '{siglip}'"
            wait.until(lambda d: want in d.find_element(By.ID, "status").text)
        finally:
            driver.quit()


@pytest.mark.skipif(NO_CHROMIUM or not shutil.which("espeak-ng"),
                    reason="needs Debian chromium-driver and espeak-ng")  # fmt: skip
def test_page_adds_a_video_with_its_speech_and_finds_what_is_said(live, tmp_path):
    """A video added with "With its speech" keeps its transcript: a text search shows the spoken
    moment with what was said and its time range, and its play button plays from there."""
    import numpy as np
    import soundfile as sf
    from selenium.webdriver.common.by import By

    from encoders import Waveform
    from housedata.writer import write_video

    said = "Free shipping on all orders this weekend."
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", said], capture_output=True,
                         check=True, timeout=30).stdout  # fmt: skip
    voice, rate = sf.read(io.BytesIO(wav), dtype="float32")
    sound = np.concatenate([np.zeros(rate, np.float32), voice, np.zeros(rate, np.float32)])
    frames = [np.full((48, 64, 3), (90, 90, 90), np.uint8)] * int(len(sound) / rate * 8)
    film = tmp_path / "talk.mp4"
    film.write_bytes(write_video(frames, 8, "MP4", Waveform(sound, rate)))
    httpx.post(f"{live}/collections", json={"name": "talks"}).raise_for_status()
    driver = chromium(tmp_path)
    try:
        wait = open_page(driver, live, "talks")
        driver.find_element(By.ID, "file").send_keys(str(film))
        wait.until(lambda d: d.find_element(By.ID, "addvideo").is_displayed())
        driver.find_element(By.ID, "withspeech").click()
        driver.find_element(By.ID, "addvideo").click()
        wait.until(lambda d: "1 spoken; search its moments" in d.find_element(By.ID, "status").text)
        driver.find_element(By.ID, "text").send_keys(said)
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit")) >= 3)
        first = driver.find_elements(By.CSS_SELECTOR, ".hit")[0]
        assert first.get_attribute("data-id") == "talk.mp4@s0"
        assert first.find_element(By.CSS_SELECTOR, ".meta").text.startswith(f'said: "{said}" 0:0')
        first.find_element(By.CSS_SELECTOR, ".play").click()
        wait.until(lambda d: d.find_elements(By.ID, "playing"))
        src = driver.find_element(By.ID, "playing").get_attribute("src")
        assert src.startswith(live + "/media/talks/") and ".mp4#t=" in src
    finally:
        driver.quit()
