"""Dashboard forms: they parse and check input; the services decide everything else."""

from django import forms
from django.conf import settings

from .models import ApiToken, Project
from .services.names import NAME_MAX


class ProjectCreateForm(forms.Form):
    """Field names are the service's (InvalidInput.field), so its refusals land on the right field."""

    name = forms.CharField(
        max_length=NAME_MAX,
        help_text="A label for you, unique among your projects; you will type it to confirm a delete or a purge.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    postgres_version = forms.ChoiceField(label="PostgreSQL version")
    api = forms.ChoiceField(label="API", choices=Project.Api.choices, widget=forms.RadioSelect)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read at each use, not at import: the images are settings.
        versions = sorted(settings.BERTH_POSTGRES_IMAGES, key=int, reverse=True)
        self.fields["postgres_version"].choices = [(v, f"PostgreSQL {v}") for v in versions]
        self.fields["postgres_version"].initial = settings.BERTH_DEFAULT_POSTGRES_VERSION
        self.fields["api"].initial = settings.BERTH_DEFAULT_API


class ConfirmNameForm(forms.Form):
    """Delete and purge: the person types the project's name, so a stray click cannot do it."""

    confirm = forms.CharField(label="Type the project's name to confirm", max_length=NAME_MAX)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_confirm(self) -> str:
        confirm = self.cleaned_data["confirm"]  # CharField has stripped it
        if confirm != self.project.name:
            raise forms.ValidationError(f"That is not the project's name; type {self.project.name!r} exactly.")
        return confirm


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="Where the token will be used, e.g. “CI” or “laptop”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
