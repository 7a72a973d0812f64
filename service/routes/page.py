"""The web page and the media it shows (image thumbnails, audio clips). When keys are
configured, a medium answers only to a bearer key that may read its collection, or to a signed
URL (`?exp=...&sig=...`, made by the responses that name media), so no one can fetch a medium by
guessing an item id."""

from __future__ import annotations

from pathlib import Path as FsPath

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from runtime.media import MEDIA_TYPES, MediaStore
from service.access import Denied
from service.contract import errors, operation_id
from service.deps import count_refusal
from service.deps import get_media as media_store
from service.schemas import NAME_PATTERN

router = APIRouter(tags=["page"], generate_unique_id_function=operation_id)
STATIC = FsPath(__file__).resolve().parents[1] / "static"
MEDIA_FILE = r"^[0-9a-f]{20}\.(" + "|".join(s[1:] for s in MEDIA_TYPES) + r")$"


@router.get("/", response_class=HTMLResponse, responses={200: {"content": {"text/html": {}}}})
async def page() -> HTMLResponse:
    """The web page: search a collection by text or image, and "more like this"."""
    return HTMLResponse((STATIC / "index.html").read_text())


async def media_access(
    request: Request,
    exp: str | None = Query(None, pattern=r"^[0-9]{1,12}$", description="Signed URL: expiry"),
    sig: str | None = Query(None, pattern=r"^[0-9a-f]{64}$", description="Signed URL: HMAC"),
) -> None:
    """A key that may read the collection, or a valid signature over the path and expiry."""
    keyring = request.app.state.keyring
    if not keyring.enabled:
        return
    try:
        if request.headers.get("authorization"):
            key = keyring.authenticate(request.headers["authorization"])
            keyring.authorize(key, "read", request.path_params.get("collection"))
        else:
            request.app.state.signer.verify(request.url.path, exp, sig)
    except Denied as e:
        count_refusal(request, e)
        raise


media_access.role = "read"  # declared with 401/403 when keys are configured (service/contract.py)


@router.get(
    "/media/{collection}/{file}", response_class=FileResponse, responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()},
              "description": "An image item's thumbnail (PNG), or an audio item's clip"},
        **errors(404, 422)},
)  # fmt: skip
async def get_media(
    collection: str = Path(pattern=NAME_PATTERN),
    file: str = Path(pattern=MEDIA_FILE),
    media: MediaStore = Depends(media_store),
    _: None = Depends(media_access),
) -> FileResponse:
    """An item's thumbnail or clip, by the URL a response gave (`media`)."""
    path = media.path(collection, file)  # both parts matched their patterns already
    if not path.is_file():
        raise HTTPException(404, "no such media")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])
