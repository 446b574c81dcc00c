"""Evaluation protocols of the paper: identification (MegaFace challenge 1), verification
(LFW), reconstruction quality and landmarks.

Import the modules directly (``occbench.protocols.identification`` ...); this package keeps
no imports of its own so that loading one protocol does not load the others.
"""
