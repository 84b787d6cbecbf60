"""The API's routes by audience: prices and models (partners, with a key), the page and docs
(public), operations (public), and the SageMaker hosting contract (inside the container only)."""
