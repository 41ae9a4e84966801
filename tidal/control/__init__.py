"""The control path: rollouts with analysis, policies and the controller loop.

``control`` may import every package below it (see DESIGN.md); nothing imports it but the
command line and the controller.
"""
