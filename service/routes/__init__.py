"""One APIRouter per resource. Each module declares its routes with their operation ids, the
errors they can send and their typed bodies; the app factory includes them all."""

from service.routes import (
    captions,
    classifiers,
    classify,
    collections,
    embeddings,
    fusion_heads,
    images,
    operations,
    page,
    search,
    speech,
)

ROUTERS = [
    embeddings.router,
    collections.router,
    search.router,
    classify.router,
    classifiers.router,
    fusion_heads.router,
    captions.router,
    speech.router,
    images.router,
    operations.router,
    page.router,
]
