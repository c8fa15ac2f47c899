"""gunicorn settings for the web process: ``gunicorn -c python:crm.gunicorn_config crm.wsgi``.

The access log leaves out the HTTP Basic user name (gunicorn's ``%(u)s``): the tracking
endpoint's clients send their write key there, and a key in a log is a key anyone who
reads the log can submit events with. Request headers (``Authorization``) are not
logged either.
"""

# Combined Log Format with "-" where the user name would be, and the time taken.
access_log_format = '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus'
accesslog = "-"
