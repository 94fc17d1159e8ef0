/* assets.S - the web console's files (web/), embedded in the binary: no files to install,
 * nothing fetched at run time. Each file is bracketed by asset_<name>_start/_end. */
    .section .rodata
    .global asset_index_html_start, asset_index_html_end
    .global asset_app_js_start, asset_app_js_end
    .global asset_app_css_start, asset_app_css_end
asset_index_html_start:
    .incbin "web/index.html"
asset_index_html_end:
asset_app_js_start:
    .incbin "web/app.js"
asset_app_js_end:
asset_app_css_start:
    .incbin "web/app.css"
asset_app_css_end:
    .section .note.GNU-stack,"",@progbits
