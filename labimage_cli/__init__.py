"""labimage: the command-line client of the labimage API (submit, follow, list and cancel builds).

Other code (the demo) uses `ApiClient`, `submit_request`, `watch_build` and `render_result`.
"""
