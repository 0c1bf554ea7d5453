//! Inference: overlap-tile prediction of whole images and volumes of any
//! size ([`predict`], geometry in [`tiles`]; several checkpoints averaged in
//! [`ensemble`]), block-wise prediction of Zarr
//! volumes larger than memory by any number of workers ([`blocks`]), scoring on labelled data
//! ([`eval`]), the output files ([`output`]) and prediction of a host
//! application's texture inside its frame ([`texture`]). Checkpoints and the metadata
//! they carry for inference live below, in [`crate::model_io`].

pub mod blocks;
pub mod ensemble;
pub mod eval;
pub mod output;
pub mod predict;
pub mod texture;
pub mod tiles;

pub use crate::model_io::InferMeta;
pub use eval::{evaluate, Metrics};
pub use predict::{PredictOptions, Predictor};
