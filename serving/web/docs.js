// Swagger UI for /docs, started from a file so the page needs no inline script.
"use strict";
const target = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: target.dataset.openapiUrl, domNode: target, deepLinking: true });
