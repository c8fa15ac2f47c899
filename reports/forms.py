from django import forms


class DigestPreferenceForm(forms.Form):
    weekly_digest = forms.BooleanField(
        label="Send me the weekly digest",
        required=False,
        help_text="Monday morning: the week's key figures with links to the reports.",
    )
