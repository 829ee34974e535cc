"""romtk full-order side: meshes, finite elements, physics, linear and nonlinear solvers."""
