"""The dashboard (``tidal ui``): server-rendered pages over the same store the CLI reads.

Pages are Jinja2 templates rendered by Starlette, with their charts drawn as inline SVG
on the server and every style and script served by Tidal itself, so the dashboard works
offline and a page is one request.
"""
