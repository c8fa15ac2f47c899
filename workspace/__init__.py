"""The rep workspace: My day, the lead page, the leads list, pipeline, tasks and
notifications, with their forms, filters and bulk actions.

An edge above every domain app: it calls the public services and selectors of
``leads``, ``scoring`` and ``nurturing``, and no domain app imports it.
"""
