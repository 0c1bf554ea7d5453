//! Inference: overlap-tile prediction of whole images and volumes of any
//! size ([`predict`], geometry in [`tiles`]), the metadata a checkpoint
//! carries for it ([`meta`]), scoring on labelled data ([`eval`]) and the
//! output files ([`output`]).

pub mod eval;
pub mod meta;
pub mod output;
pub mod predict;
pub mod tiles;

pub use eval::{evaluate, Metrics};
pub use meta::InferMeta;
pub use predict::{PredictOptions, Predictor};
