"""The house formats of dates and times, one for dates and one for moments, on every
page, report and email (``FORMAT_MODULE_PATH``): "6 Dec 2026" and "6 Dec 2026, 14:30"."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
MONTH_DAY_FORMAT = "j M"
TIME_FORMAT = "H:i"
