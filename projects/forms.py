"""Dashboard forms: they parse and check input; the services decide everything else."""

from typing import Any, cast

from django import forms

from .models import NAME_MAX, ApiToken, Project
from projects.stack.images import needs, offer


class ProjectCreateForm(forms.Form):
    """Field names are the service's (InvalidInput.field), so its refusals land on the right field."""

    not_offered: list[str]  # offerings this installation cannot run, said on the form

    name = forms.CharField(
        max_length=NAME_MAX,
        help_text="A label for you, unique among your projects; you will type it to confirm a delete or a purge.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    postgres_version = forms.ChoiceField(label="PostgreSQL version")
    api = forms.ChoiceField(label="API", choices=Project.Api.choices, widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        offer_choices(self)


def offer_choices(form: "ProjectCreateForm | ProjectRetryForm") -> None:
    """Only what this installation can run (its image could be had), read at each use: `up` may have changed it."""
    offered = offer()
    versions = sorted(offered.postgres, key=int, reverse=True)
    # Field is what `fields` holds; these two are the ChoiceFields both forms declare.
    cast(forms.ChoiceField, form.fields["postgres_version"]).choices = [(v, f"PostgreSQL {v}") for v in versions]
    form.fields["postgres_version"].initial = offered.default_postgres_version
    cast(forms.ChoiceField, form.fields["api"]).choices = [(value, label) for value, label in Project.Api.choices if value in offered.api]
    form.fields["api"].initial = offered.default_api
    # Shown on the form: a person sees why a choice is absent, not just that it is.
    form.not_offered = [need.label for need in needs() if need.key in offered.missing]


class ProjectRetryForm(forms.Form):
    """Retry a failed create with other choices (the start action's optional fields)."""

    not_offered: list[str]

    postgres_version = forms.ChoiceField(label="PostgreSQL version")
    api = forms.ChoiceField(label="API", widget=forms.RadioSelect)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "retry_%s")  # beside the page's other forms
        super().__init__(*args, **kwargs)
        offer_choices(self)
        # What failed is preselected only if it can run now (its image may have been built since).
        offered = offer()
        if project.postgres_version in offered.postgres:
            self.fields["postgres_version"].initial = project.postgres_version
        if project.api_flavour in offered.api:
            self.fields["api"].initial = project.api_flavour


class ConfirmNameForm(forms.Form):
    """Delete and purge: the person types the project's name, so a stray click cannot do it."""

    confirm = forms.CharField(label="Type the project's name to confirm", max_length=NAME_MAX)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_confirm(self) -> str:
        confirm: str = self.cleaned_data["confirm"]  # CharField has stripped it
        if confirm != self.project.name:
            raise forms.ValidationError(f"That is not the project's name; type {self.project.name!r} exactly.")
        return confirm


class ApiTokenCreateForm(forms.Form):
    # Values are what `create_api_token --expires` takes (services/accounts/tokens.py parses both).
    EXPIRES = [("", "Never"), ("1d", "In 1 day"), ("7d", "In 7 days"), ("30d", "In 30 days"), ("90d", "In 90 days"), ("365d", "In a year")]

    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="Where the token will be used, e.g. “CI” or “laptop”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expires = forms.ChoiceField(choices=EXPIRES, required=False, initial="30d", label="Expires")
    read_only = forms.BooleanField(required=False, label="Read-only", help_text="It can list and read, never change anything.")
