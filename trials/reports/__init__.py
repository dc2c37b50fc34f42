"""Documents for people: effect reports for a committee, audit reports, the portfolio page.

Rendered with jinja2 from templates in `templates/` (a user folder can override any of them),
with figures drawn by matplotlib as inline SVG, so every HTML file stands alone.
"""
