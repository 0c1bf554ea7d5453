//! Type inference for every op, in one generic driver: the count of inputs and
//! their dtypes come from the op's spec (its slots and their roles), the
//! shapes from the family's shape rule, the output dtypes from the output
//! slots' roles.
//!
//! Errors are plain strings naming the shapes involved; the graph prefixes
//! the node and the op (see `Graph::add_node`).

use super::ops::{Check, Op, Role, Slots};
use crate::shape::{check_activation, DType, Shape};

/// A value's static type: shape and element type.
pub type TypeOf = (Shape, DType);

impl Op {
    /// Output shapes and dtypes for the given input types (after checking the
    /// count, the dtypes and every shape relation).
    pub fn infer(&self, ins: &[TypeOf]) -> Check<Vec<TypeOf>> {
        let spec = self.spec();
        let arity = spec.inputs.arity();
        if !arity.accepts(ins.len()) {
            return Err(format!("takes {arity} inputs, got {}", ins.len()));
        }
        let act = check_inputs(&spec.inputs, ins)?.unwrap_or_else(|| self.own_act_dtype());
        let shapes: Vec<Shape> = ins.iter().map(|t| t.0).collect();
        let outs = (spec.shapes)(self, &shapes)?;
        debug_assert_eq!(outs.len(), spec.outputs.count(), "{}", spec.name);
        Ok(outs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let role = spec.outputs.get(i).map_or(Role::F32, |slot| slot.role);
                (s, role.output_dtype(act))
            })
            .collect())
    }

    /// The dtype of the activation outputs of an op without activation
    /// inputs: `Zeros` carries its own (the gradients it stands in for may be
    /// F16); every other such op gives F32.
    fn own_act_dtype(&self) -> DType {
        match self {
            Op::Zeros(a) => a.dtype,
            _ => DType::F32,
        }
    }
}

/// Check each input's dtype (and rank, for activations) against its slot;
/// returns the dtype of the activation inputs (`None` when there are none),
/// which must all agree.
fn check_inputs(slots: &Slots, ins: &[TypeOf]) -> Check<Option<DType>> {
    let mut act: Option<(String, TypeOf)> = None;
    for (i, t) in ins.iter().enumerate() {
        let (slot, what) = match slots.get(i) {
            Some(s) => (s, slots.name(i)),
            None => return Err(format!("has no input {i}")),
        };
        if !slot.role.accepts(t.1) {
            return Err(format!(
                "{what} {} has dtype {:?}, expected {}",
                t.0,
                t.1,
                slot.role.expected()
            ));
        }
        if slot.role == Role::Act {
            check_activation(&what, &t.0)?;
        }
        if matches!(slot.role, Role::Act | Role::Any) {
            match &act {
                Some((first, a)) if a.1 != t.1 => {
                    return Err(format!(
                        "{first} {} ({:?}) and {what} {} ({:?}) must have one dtype",
                        a.0, a.1, t.0, t.1
                    ))
                }
                Some(_) => {}
                None => act = Some((what, *t)),
            }
        }
    }
    Ok(act.map(|(_, t)| t.1))
}
