"""Small display filters for the dashboard's templates."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """A time as a person says it ("just now", "3 minutes ago", "2 hours ago"); empty for none."""
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"  # timesince would say "0 minutes"
    return f"{timesince(value, depth=1)} ago"
