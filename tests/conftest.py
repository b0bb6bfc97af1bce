import nested_nbval


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs JupyterLab in headless Chromium (needs /usr/bin/chromium)")


def pytest_collection_modifyitems(session, config, items):
    """The nested nbval run's test goes last: it waits for that run, which the others run beside."""
    guard = [item for item in items if item.name == nested_nbval.GUARD]
    items[:] = [item for item in items if item.name != nested_nbval.GUARD] + guard


def pytest_collection_finish(session):
    """Start the nested nbval run (minutes) now, beside the other tests, if its test was selected."""
    if not nested_nbval.inside() and any(item.name == nested_nbval.GUARD for item in session.items):
        nested_nbval.start()


def pytest_sessionfinish(session, exitstatus):
    nested_nbval.stop()
