//! Turning kernel outputs into what a tool returns: text with ANSI codes stripped, images as
//! image content, HTML-only results as their `text/plain`, and a byte cap that keeps the head and
//! the tail of a flood with a note of what was cut.
//!
//! The cap is enforced while the cell runs (the [`Collector`] is the execution's sink), so the
//! server holds at most about `max_bytes` of a cell's output however much it prints.
//!
//! One file per concept: `model` (the items), `convert` (from kernel messages and from
//! nbformat), `collector` (the cap), [`fit`] (images that fit the model) and [`nbformat`] (the
//! outputs saved into a notebook). Nothing here knows MCP: `crate::mcp::render` turns items
//! into content blocks.

mod collector;
mod convert;
pub mod fit;
mod model;
pub mod nbformat;

pub use collector::{Collector, ProgressFn};
#[cfg(test)]
pub use convert::convert;
pub use convert::convert_nbformat;
pub(crate) use fit::{IMAGE_BUDGET_FACTOR, fit_image, image_budget, image_fit_limits};
pub use model::{OutputItem, SavedFile};
