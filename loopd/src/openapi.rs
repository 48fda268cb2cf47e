//! The OpenAPI document of the API, served at `GET /openapi.json`.
//!
//! It is generated, never written: each handler carries a `#[utoipa::path]` naming its method,
//! path, parameters and the Rust types of its bodies, and the schemas are derived from those
//! types (the same ones serde writes on the wire). The router is built from the same
//! annotations through [`Routes`], which has no way to add a route without its operation, so
//! the document and the routes served cannot drift apart.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required};
use utoipa::openapi::{OpenApi as Document, RefOr, Response as Answer, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use loop_api::meta::{ErrorBody, OutputChunk};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "loopd",
        description = "The HTTP API of the loop daemon. Errors are a status code and \
                       `{\"error\", \"code\"}`; bodies over 1 MiB are refused (413); a request \
                       whose `Host` is not a loopback name is refused (421) unless loopd runs \
                       with `--allow-remote`.",
    ),
    components(schemas(ErrorBody, OutputChunk, loop_core::EventRecord)),
    modifiers(&Conventions),
)]
struct ApiDoc;

/// The optional bearer token, which every operation accepts.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed on every route but /health when loopd runs with a token \
                         (`LOOPD_AUTH_TOKEN`); without one, nothing is needed.",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// An error response: the status says which, the body says why.
fn error_response(description: &str) -> RefOr<Answer> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .into()
}

/// The API's routes, each with its operation in the document. There is deliberately no
/// `route`: a handler is added with `.routes(routes!(handler))`, which needs its
/// `#[utoipa::path]`, so nothing is served that the document does not describe.
pub struct Routes(OpenApiRouter<AppState>);

impl Routes {
    pub fn new() -> Routes {
        Routes(OpenApiRouter::with_openapi(ApiDoc::openapi()))
    }

    /// Adds the handlers of `routes!(...)` and their operations.
    pub fn routes(self, routes: UtoipaMethodRouter<AppState>) -> Routes {
        Routes(self.0.routes(routes))
    }

    /// The router, serving the document at `/openapi.json` (an operation of its own).
    pub fn finish(self) -> Router<AppState> {
        let (router, mut document) = self
            .routes(utoipa_axum::routes!(openapi_json))
            .0
            .split_for_parts();
        // axum's catch-all `{*name}` is a plain `{name}` parameter in OpenAPI.
        document.paths.paths = std::mem::take(&mut document.paths.paths)
            .into_iter()
            .map(|(path, item)| (path.replace("{*", "{"), item))
            .collect();
        for item in document.paths.paths.values_mut() {
            for operation in operations(item) {
                if let Some(body) = &mut operation.request_body {
                    optional_body(body);
                }
                // Every route can answer with the guard's errors (401, 421) and the fallbacks'
                // (404, 405), and each documents its own; these two ranges cover the rest.
                let responses = &mut operation.responses.responses;
                responses
                    .entry("4XX".to_owned())
                    .or_insert_with(|| error_response("A refused request."));
                responses.entry("5XX".to_owned()).or_insert_with(|| {
                    error_response("The daemon is shutting down (503), or failed.")
                });
            }
        }
        let json = document
            .to_json()
            .expect("an OpenAPI document always serializes");
        router.layer(Extension(Serialized(Bytes::from(json))))
    }
}

/// `Body<T>` reads an empty body as `{}`, so a body whose fields are all optional may be left
/// out; such a handler's annotation says `Option<T>`, which utoipa writes as "`T` or `null`". A
/// `null` body is refused, though: say "`T`, not required" instead.
fn optional_body(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let mut items = one_of.items.iter().filter(|item| !is_null(item));
            if let (Some(item), None) = (items.next(), items.next()) {
                content.schema = Some(item.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document, serialized once.
#[derive(Clone, Debug)]
struct Serialized(Bytes);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object)),
)]
async fn openapi_json(Extension(Serialized(document)): Extension<Serialized>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}
