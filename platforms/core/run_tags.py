"""The MLflow tags a launch records about its job that every cloud launcher words the same way: the image
that ran (what --baseline compares, core/launch.py) and where the price came from (what the report labels
a cost with)."""
from __future__ import annotations

from typing import Optional

from platforms.core import tracking


def image_tags(digest: Optional[str], image_id: Optional[str] = None) -> dict[str, str]:
    """platbench.image_digest and platbench.image_id: only what is known."""
    tags = {}
    if digest:
        tags[tracking.Tag.IMAGE_DIGEST] = digest
    if image_id:
        tags[tracking.Tag.IMAGE_ID] = image_id
    return tags


def price_tags(quote) -> dict[str, str]:
    """platbench.price_source and platbench.price_basis of a pricing.Quote; none without a quote."""
    if quote is None:
        return {}
    return {tracking.Tag.PRICE_SOURCE: quote.sources, tracking.Tag.PRICE_BASIS: quote.basis}
