"""Built-in plugins (tools, rewards, protocols, models, benchmarks).

Each module here is an ordinary plugin: it implements the public
``register_<kind>`` hooks and is listed in
:data:`codedance.core.discovery.BUILTIN_PLUGINS`.
"""
