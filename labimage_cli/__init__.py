"""labimage: the command-line client of the labimage API (submit, follow, list and cancel builds).

Other code (the demo) uses client.ApiClient, commands.submit_request, watch.watch_build,
render.result_report and main.guarded (errors to exit codes).
"""
