"""Finding and binding librevl.

Lookup order (the first that loads wins):

1. the environment variable ``REVL_LIBRARY`` (a path to the shared library).  When it is set,
   nothing else is tried: an explicit choice that fails is an error, not a reason to load some
   other copy;
2. the library installed inside the package, ``revl/_native/librevl.so.0``, which
   ``pip install ./python`` builds from the checkout (python/setup.py);
3. the build directory of the checkout this package sits in: ``<checkout>/lib/librevl.so.0``
   (the package is ``<checkout>/python/revl``), as ``make lib`` leaves it;
4. the system loader: ``ctypes.util.find_library("revl")``, then ``librevl.so.0`` (which honours
   ``LD_LIBRARY_PATH`` and the ldconfig cache).

On failure :class:`ImportError` names every place tried and why each failed.

Every C function is declared below (``PROTOTYPES``) in the header's own spelling; the test
``tests/test_prototypes.py`` checks the table against ``include/revl.h``.  A function the loaded
library does not export raises :class:`revl.Unavailable` when used, so the package still imports
against an older or partial build.
"""

import ctypes
import ctypes.util
import os
import pathlib

from ._errors import Unavailable

EXPECTED_MAJOR = 0

# ------------------------------------------------------------------ structs (must match revl.h)
c_size_t = ctypes.c_size_t


class Allocator(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("alloc", ctypes.c_void_p),
        ("free", ctypes.c_void_p),
        ("user", ctypes.c_void_p),
    ]


class ModelDef(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("n_params", c_size_t),
        ("n_meta", c_size_t),
        ("grad", ctypes.c_void_p),      # revl_grad_fn
        ("hvp", ctypes.c_void_p),       # revl_hvp_fn
        ("hvp_gives_grad", ctypes.c_int),
        ("user", ctypes.c_void_p),
        ("user_free", ctypes.c_void_p),
        ("allocator", ctypes.c_void_p),  # const revl_allocator *
    ]


class TrainerOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("frac_bits", ctypes.c_uint),
        ("truncate", c_size_t),
        ("threads", ctypes.c_int),
        ("allocator", ctypes.c_void_p),
    ]


class TrainerStats(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("steps_done", c_size_t),
        ("buffer_bits", ctypes.c_double),
        ("buffer_bytes", c_size_t),
        ("peak_bytes", c_size_t),
        ("last_loss", ctypes.c_double),
    ]


class MlpOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("activation", ctypes.c_int),  # revl_activation
        ("penalty", ctypes.c_int),     # revl_penalty
        ("batch_size", c_size_t),
        ("seed", ctypes.c_uint64),
        ("threads", ctypes.c_int),
        ("allocator", ctypes.c_void_p),
    ]


class HyperoptReport(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("iteration", c_size_t),
        ("train_loss", ctypes.c_double),
        ("valid_loss", ctypes.c_double),
        ("valid_accuracy", ctypes.c_double),
        ("hypergrad_norm", ctypes.c_double),
        ("step_size", ctypes.c_double),
        ("seconds", ctypes.c_double),
        ("chaos", ctypes.c_int),
    ]


class HyperoptOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("learn", ctypes.c_uint),
        ("method", ctypes.c_int),        # revl_meta_method
        ("step_size", ctypes.c_double),
        ("momentum", ctypes.c_double),
        ("adam_beta1", ctypes.c_double),
        ("adam_beta2", ctypes.c_double),
        ("adam_eps", ctypes.c_double),
        ("iterations", c_size_t),
        ("fresh_seed", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("chaos_factor", ctypes.c_double),
        ("chaos_action", ctypes.c_int),  # revl_chaos_action
        ("report", ctypes.c_void_p),     # revl_report_fn
        ("report_user", ctypes.c_void_p),
        ("objective", ctypes.c_void_p),  # revl_objective_fn
        ("objective_user", ctypes.c_void_p),
        ("frac_bits", ctypes.c_uint),
        ("threads", ctypes.c_int),
        ("allocator", ctypes.c_void_p),
    ]


class FamilyOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("type", ctypes.c_int),          # revl_family_type
        ("learn", ctypes.c_uint),
        ("window", c_size_t),
        ("shape", ctypes.c_int),         # revl_shape
        ("warmup", c_size_t),
        ("n_layers", c_size_t),
        ("group_layer", ctypes.c_void_p),  # const size_t *
        ("n_theta", c_size_t),
        ("map", ctypes.c_void_p),        # revl_family_map_fn
        ("vjp", ctypes.c_void_p),        # revl_family_vjp_fn
        ("user", ctypes.c_void_p),
    ]


class TunerReport(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("phase", ctypes.c_int),
        ("index", c_size_t),
        ("loss", ctypes.c_double),
        ("best_loss", ctypes.c_double),
        ("step_size", ctypes.c_double),
        ("accepted", ctypes.c_int),
        ("start", c_size_t),
        ("seconds", ctypes.c_double),
        ("eta_seconds", ctypes.c_double),
        ("runs", c_size_t),
    ]


class TunerOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("strategy", ctypes.c_int),      # revl_tune_strategy
        ("budget_seconds", ctypes.c_double),
        ("budget_runs", c_size_t),
        ("cpu_time", ctypes.c_int),
        ("search_fraction", ctypes.c_double),
        ("n_initial", c_size_t),
        ("n_candidates", c_size_t),
        ("good_fraction", ctypes.c_double),
        ("refine_starts", c_size_t),
        ("refine_method", ctypes.c_int),  # revl_refine_method
        ("refine_step", ctypes.c_double),
        ("step_grow", ctypes.c_double),
        ("step_shrink", ctypes.c_double),
        ("min_step", ctypes.c_double),
        ("n_orders", c_size_t),
        ("seed", ctypes.c_uint64),
        ("test", ctypes.c_void_p),       # const revl_dataset *
        ("report", ctypes.c_void_p),     # revl_tuner_report_fn
        ("report_user", ctypes.c_void_p),
        ("objective", ctypes.c_void_p),  # revl_objective_fn
        ("objective_user", ctypes.c_void_p),
        ("frac_bits", ctypes.c_uint),
        ("threads", ctypes.c_int),
        ("allocator", ctypes.c_void_p),
    ]


class TunerResult(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("valid_loss", ctypes.c_double),
        ("valid_accuracy", ctypes.c_double),
        ("test_loss", ctypes.c_double),
        ("test_accuracy", ctypes.c_double),
        ("search_evaluations", c_size_t),
        ("refine_iterations", c_size_t),
        ("runs", c_size_t),
        ("seconds", ctypes.c_double),
        ("best_phase", ctypes.c_int),
    ]


# C struct name -> ctypes class (tests/test_abi.py compares sizes and offsets with the C compiler)
STRUCTS = {
    "revl_allocator": Allocator,
    "revl_model_def": ModelDef,
    "revl_trainer_options": TrainerOptions,
    "revl_trainer_stats": TrainerStats,
    "revl_mlp_options": MlpOptions,
    "revl_hyperopt_report": HyperoptReport,
    "revl_hyperopt_options": HyperoptOptions,
    "revl_family_options": FamilyOptions,
    "revl_tuner_report": TunerReport,
    "revl_tuner_options": TunerOptions,
    "revl_tuner_result": TunerResult,
}

# ------------------------------------------------------------------ callback types
# Pointers arrive as plain integers (c_void_p), which is the cheapest way to make numpy views.
GRAD_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
HVP_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p)
HVP_AFFINE_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
HVP_DIR_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
DIR_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
REPORT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(HyperoptReport), ctypes.c_void_p)
OBJECTIVE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_size_t, ctypes.c_int, ctypes.c_double,
                               ctypes.c_double, ctypes.c_void_p)
FAMILY_MAP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
FAMILY_VJP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p)
TUNER_REPORT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(TunerReport), ctypes.c_void_p)

# C typedef name -> (return type, argument types) of the callback, in the header's spelling
CALLBACK_TYPES = {
    "revl_grad_fn": ("int", ("size_t", "const double *", "const double *", "double *",
                             "double *", "void *")),
    "revl_hvp_fn": ("int", ("size_t", "const double *", "const double *", "const double *",
                            "double *", "double *", "double *", "void *")),
    "revl_hvp_affine_fn": ("int", ("size_t", "const double *", "const double *",
                                   "const double *", "const double *", "double *", "double *",
                                   "double *", "void *")),
    "revl_dir_fn": ("int", ("void *", "const double *")),
    "revl_hvp_dir_fn": ("int", ("size_t", "const double *", "const double *", "revl_dir_fn",
                                "void *", "const double *", "double *", "double *", "double *",
                                "void *")),
    "revl_report_fn": ("int", ("const revl_hyperopt_report *", "void *")),
    "revl_micro_grad_fn": ("int", ("size_t", "size_t", "const double *", "const double *",
                                   "double *", "double *", "void *")),
    "revl_micro_hvp_fn": ("int", ("size_t", "size_t", "const double *", "const double *",
                                  "const double *", "double *", "double *", "double *",
                                  "void *")),
    "revl_objective_fn": ("int", ("const double *", "const double *", "double *", "double *",
                                  "double *", "void *")),
    "revl_progress_fn": ("int", ("size_t", "int", "double", "double", "void *")),
    "revl_family_map_fn": ("int", ("const double *", "double *", "void *")),
    "revl_family_vjp_fn": ("int", ("const double *", "const double *", "double *", "void *")),
    "revl_tuner_report_fn": ("int", ("const revl_tuner_report *", "void *")),
}

# ------------------------------------------------------------------ prototypes
# (name, return type, argument types) exactly as in include/revl.h.
PROTOTYPES = [
    ("revl_version_number", "unsigned", ()),
    ("revl_version_string", "const char *", ()),
    ("revl_strerror", "const char *", ("int",)),
    ("revl_last_create_error", "const char *", ()),
    ("revl_allocator_init", "void", ("revl_allocator *",)),
    # model
    ("revl_model_def_init", "void", ("revl_model_def *",)),
    ("revl_model_create", "int", ("revl_model **", "const revl_model_def *")),
    ("revl_model_free", "void", ("revl_model *",)),
    ("revl_model_n_params", "size_t", ("const revl_model *",)),
    ("revl_model_n_meta", "size_t", ("const revl_model *",)),
    ("revl_model_last_error", "const char *", ("const revl_model *",)),
    ("revl_model_grad", "int", ("revl_model *", "size_t", "const double *", "const double *",
                                "double *", "double *")),
    ("revl_model_hvp", "int", ("revl_model *", "size_t", "const double *", "const double *",
                               "const double *", "double *", "double *")),
    ("revl_model_set_hvp_affine", "int", ("revl_model *", "revl_hvp_affine_fn")),
    ("revl_model_set_hvp_dir", "int", ("revl_model *", "revl_hvp_dir_fn")),
    ("revl_model_n_groups", "size_t", ("const revl_model *",)),
    ("revl_model_group_offsets", "int", ("const revl_model *", "size_t *")),
    ("revl_model_set_groups", "int", ("revl_model *", "size_t", "const size_t *")),
    ("revl_model_init_weights", "int", ("revl_model *", "const double *", "uint64_t",
                                        "double *")),
    ("revl_model_init_scales_grad", "int", ("revl_model *", "const double *", "const double *",
                                            "double *")),
    # schedule
    ("revl_schedule_create", "int", ("revl_schedule **", "size_t", "size_t", "const size_t *")),
    ("revl_schedule_create_with", "int", ("revl_schedule **", "size_t", "size_t",
                                          "const size_t *", "const revl_allocator *")),
    ("revl_schedule_free", "void", ("revl_schedule *",)),
    ("revl_schedule_fill", "int", ("revl_schedule *", "double", "double")),
    ("revl_schedule_set", "int", ("revl_schedule *", "size_t", "size_t", "double", "double")),
    ("revl_schedule_set_all", "int", ("revl_schedule *", "const double *", "const double *")),
    ("revl_schedule_get_all", "int", ("const revl_schedule *", "double *", "double *")),
    ("revl_schedule_n_steps", "size_t", ("const revl_schedule *",)),
    ("revl_schedule_n_groups", "size_t", ("const revl_schedule *",)),
    ("revl_schedule_offsets", "int", ("const revl_schedule *", "size_t *")),
    ("revl_schedule_last_error", "const char *", ("const revl_schedule *",)),
    ("revl_gamma_applied", "double", ("double",)),
    # optimisers and hyperparameter kinds
    ("revl_optimizer_name", "const char *", ("revl_optimizer",)),
    ("revl_hyper_name", "const char *", ("revl_hyper",)),
    ("revl_hyper_applied", "double", ("revl_hyper", "double")),
    ("revl_hyper_learn_bit", "unsigned", ("revl_hyper",)),
    ("revl_schedule_create_for", "int", ("revl_schedule **", "revl_optimizer", "size_t",
                                         "size_t", "const size_t *", "const revl_allocator *")),
    ("revl_schedule_optimizer", "revl_optimizer", ("const revl_schedule *",)),
    ("revl_schedule_kinds", "size_t", ("const revl_schedule *", "revl_hyper *")),
    ("revl_schedule_set_kind", "int", ("revl_schedule *", "revl_hyper", "const double *")),
    ("revl_schedule_get_kind", "int", ("const revl_schedule *", "revl_hyper", "double *")),
    ("revl_schedule_fill_kind", "int", ("revl_schedule *", "revl_hyper", "double")),
    # trainer
    ("revl_trainer_options_init", "void", ("revl_trainer_options *",)),
    ("revl_trainer_create", "int", ("revl_trainer **", "revl_model *", "const revl_schedule *",
                                    "const revl_trainer_options *")),
    ("revl_trainer_free", "void", ("revl_trainer *",)),
    ("revl_trainer_train", "int", ("revl_trainer *", "const double *", "const double *")),
    ("revl_trainer_weights", "int", ("const revl_trainer *", "double *")),
    ("revl_trainer_hypergrad", "int", ("revl_trainer *", "const double *", "const double *",
                                       "double *", "double *", "double *", "double *")),
    ("revl_trainer_stats_init", "void", ("revl_trainer_stats *",)),
    ("revl_fixed_round", "int", ("unsigned int", "double *", "size_t")),
    ("revl_trainer_hypergrad_kinds", "int", ("revl_trainer *", "const double *",
                                             "const double *", "double *",
                                             "double * const *", "double *")),
    ("revl_trainer_hypergrad_kinds_n", "int", ("revl_trainer *", "const double *",
                                               "const double *", "double *", "size_t",
                                               "double * const *", "double *")),
    ("revl_trainer_get_stats", "int", ("const revl_trainer *", "revl_trainer_stats *")),
    ("revl_trainer_last_error", "const char *", ("const revl_trainer *",)),
    ("revl_trainer_save", "int", ("revl_trainer *", "const char *")),
    ("revl_trainer_load", "int", ("revl_trainer *", "const char *")),
    ("revl_trainer_train_resume", "int", ("revl_trainer *",)),
    ("revl_trainer_hypergrad_resume", "int", ("revl_trainer *", "double *", "size_t",
                                              "double * const *", "double *")),
    ("revl_trainer_set_checkpoint", "int", ("revl_trainer *", "const char *", "size_t")),
    ("revl_trainer_train_forward", "int", ("revl_trainer *", "const double *", "const double *")),
    ("revl_trainer_set_progress", "int", ("revl_trainer *", "revl_progress_fn", "size_t",
                                          "void *")),
    # data
    ("revl_dataset_create", "int", ("revl_dataset **", "const revl_allocator *")),
    ("revl_dataset_free", "void", ("revl_dataset *",)),
    ("revl_dataset_set", "int", ("revl_dataset *", "size_t", "size_t", "size_t",
                                 "const double *", "const int32_t *")),
    ("revl_dataset_load_idx", "int", ("revl_dataset *", "const char *", "const char *",
                                      "size_t")),
    ("revl_dataset_subset", "int", ("revl_dataset *", "const revl_dataset *", "size_t",
                                    "size_t")),
    ("revl_dataset_standardize", "int", ("revl_dataset *", "const revl_dataset *")),
    ("revl_dataset_n", "size_t", ("const revl_dataset *",)),
    ("revl_dataset_dim", "size_t", ("const revl_dataset *",)),
    ("revl_dataset_n_classes", "size_t", ("const revl_dataset *",)),
    ("revl_dataset_x", "const double *", ("const revl_dataset *",)),
    ("revl_dataset_labels", "const int32_t *", ("const revl_dataset *",)),
    ("revl_dataset_last_error", "const char *", ("const revl_dataset *",)),
    # built-in models
    ("revl_mlp_options_init", "void", ("revl_mlp_options *",)),
    ("revl_mlp_create", "int", ("revl_model **", "size_t", "const size_t *",
                                "const revl_dataset *", "const revl_mlp_options *")),
    ("revl_model_evaluate", "int", ("revl_model *", "const revl_dataset *", "const double *",
                                    "double *", "double *", "double *")),
    ("revl_blas_threads", "int", ("int",)),
    # data parallel (docs/mpi.md): declared, not wrapped in a class yet
    ("revl_comm_init_local", "void", ("revl_comm *",)),
    ("revl_dp_micro_range", "int", ("size_t", "int", "int", "size_t *", "size_t *")),
    ("revl_dp_def_init", "void", ("revl_dp_def *",)),
    ("revl_dp_model_create", "int", ("revl_model **", "const revl_dp_def *")),
    ("revl_mlp_dp_create", "int", ("revl_model **", "size_t", "const size_t *",
                                   "const revl_dataset *", "const revl_mlp_options *", "size_t",
                                   "unsigned int", "const revl_comm *")),
    ("revl_trainer_create_sharded", "int", ("revl_trainer **", "revl_model *",
                                            "const revl_schedule *",
                                            "const revl_trainer_options *", "const revl_comm *")),
    # hyper-optimiser
    ("revl_hyperopt_options_init", "void", ("revl_hyperopt_options *",)),
    ("revl_hyperopt_report_init", "void", ("revl_hyperopt_report *",)),
    ("revl_hyperopt_create", "int", ("revl_hyperopt **", "revl_model *", "const revl_dataset *",
                                     "size_t", "const revl_hyperopt_options *")),
    ("revl_hyperopt_create_for", "int", ("revl_hyperopt **", "revl_model *",
                                         "const revl_dataset *", "size_t", "revl_optimizer",
                                         "const revl_hyperopt_options *")),
    ("revl_hyperopt_set_kind", "int", ("revl_hyperopt *", "revl_hyper", "const double *")),
    ("revl_hyperopt_get_kind", "int", ("const revl_hyperopt *", "int", "revl_hyper",
                                       "double *")),
    ("revl_hyperopt_optimizer", "revl_optimizer", ("const revl_hyperopt *",)),
    ("revl_hyperopt_free", "void", ("revl_hyperopt *",)),
    ("revl_hyperopt_set", "int", ("revl_hyperopt *", "const double *", "const double *",
                                  "const double *", "const double *")),
    ("revl_hyperopt_get", "int", ("const revl_hyperopt *", "int", "double *", "double *",
                                  "double *", "double *")),
    ("revl_hyperopt_step", "int", ("revl_hyperopt *", "revl_hyperopt_report *")),
    ("revl_hyperopt_run", "int", ("revl_hyperopt *",)),
    ("revl_hyperopt_n_steps", "size_t", ("const revl_hyperopt *",)),
    ("revl_hyperopt_n_groups", "size_t", ("const revl_hyperopt *",)),
    ("revl_hyperopt_save", "int", ("const revl_hyperopt *", "int", "const char *")),
    ("revl_hyperopt_load", "int", ("revl_hyperopt *", "const char *")),
    ("revl_hyperopt_last_error", "const char *", ("const revl_hyperopt *",)),
    ("revl_hyperopt_checkpoint_save", "int", ("revl_hyperopt *", "const char *")),
    ("revl_hyperopt_checkpoint_load", "int", ("revl_hyperopt *", "const char *")),
    ("revl_hyperopt_iterations_done", "size_t", ("const revl_hyperopt *",)),
    # schedule families and the tuner
    ("revl_family_options_init", "void", ("revl_family_options *",)),
    ("revl_family_create", "int", ("revl_family **", "revl_optimizer", "size_t", "size_t",
                                   "size_t", "const revl_family_options *")),
    ("revl_family_free", "void", ("revl_family *",)),
    ("revl_family_n_theta", "size_t", ("const revl_family *",)),
    ("revl_family_n_z", "size_t", ("const revl_family *",)),
    ("revl_family_map", "int", ("revl_family *", "const double *", "double *")),
    ("revl_family_vjp", "int", ("revl_family *", "const double *", "const double *",
                                "double *")),
    ("revl_family_set_base", "int", ("revl_family *", "const double *")),
    ("revl_family_get_base", "int", ("const revl_family *", "double *")),
    ("revl_family_project", "int", ("revl_family *", "const double *", "double *")),
    ("revl_family_get_bounds", "int", ("const revl_family *", "double *", "double *")),
    ("revl_family_set_bounds", "int", ("revl_family *", "const double *", "const double *")),
    ("revl_family_coord_name", "int", ("const revl_family *", "size_t", "char *", "size_t")),
    ("revl_family_last_error", "const char *", ("const revl_family *",)),
    ("revl_tuner_report_init", "void", ("revl_tuner_report *",)),
    ("revl_tuner_options_init", "void", ("revl_tuner_options *",)),
    ("revl_tuner_create", "int", ("revl_tuner **", "revl_model *", "const revl_dataset *",
                                  "size_t", "revl_optimizer", "const revl_family *",
                                  "const revl_family *", "const revl_tuner_options *")),
    ("revl_tuner_free", "void", ("revl_tuner *",)),
    ("revl_tuner_step", "int", ("revl_tuner *", "revl_tuner_report *")),
    ("revl_tuner_run", "int", ("revl_tuner *",)),
    ("revl_tuner_phase", "int", ("const revl_tuner *",)),
    ("revl_tuner_result_init", "void", ("revl_tuner_result *",)),
    ("revl_tuner_get_result", "int", ("revl_tuner *", "revl_tuner_result *")),
    ("revl_tuner_best_kind", "int", ("const revl_tuner *", "revl_hyper", "double *")),
    ("revl_tuner_best_scales_meta", "int", ("const revl_tuner *", "double *", "double *")),
    ("revl_tuner_best_z", "int", ("const revl_tuner *", "double *")),
    ("revl_tuner_refine_point", "int", ("const revl_tuner *", "double *", "double *", "double *")),
    ("revl_tuner_n_theta", "size_t", ("const revl_tuner *", "int")),
    ("revl_tuner_best_weights", "int", ("const revl_tuner *", "double *")),
    ("revl_tuner_best_schedule", "int", ("const revl_tuner *", "revl_schedule *")),
    ("revl_tuner_checkpoint_save", "int", ("revl_tuner *", "const char *")),
    ("revl_tuner_checkpoint_load", "int", ("revl_tuner *", "const char *")),
    ("revl_tuner_last_error", "const char *", ("const revl_tuner *",)),
    ("revl_mlp_batch_indices", "int", ("revl_model *", "size_t", "size_t *", "size_t *")),
    ("revl_mlp_set_order_seed", "int", ("revl_model *", "uint64_t")),
]

_SCALARS = {
    "void": None,
    "int": ctypes.c_int,
    "unsigned": ctypes.c_uint,
    "unsignedint": ctypes.c_uint,  # "unsigned int" with the spaces removed
    "size_t": ctypes.c_size_t,
    "double": ctypes.c_double,
    "uint64_t": ctypes.c_uint64,
    "int32_t": ctypes.c_int32,
    "revl_optimizer": ctypes.c_int,     # enums are int-sized in C
    "revl_hyper": ctypes.c_int,
}
# typedefs of callbacks passed as arguments (addresses)
_FN_TYPEDEFS = {"revl_hvp_affine_fn", "revl_hvp_dir_fn", "revl_progress_fn"}


def norm_type(t):
    """'const  double*' -> 'const double *' (one spelling for comparisons)."""
    t = " ".join(t.replace("*", " * ").split())
    return t.replace("* *", "**")


def ctype_of(t):
    """The ctypes type used for a C type in the header's spelling."""
    t = norm_type(t)
    base = t.replace("const ", "").replace(" ", "")
    if base in _SCALARS:
        return _SCALARS[base]
    if base in _FN_TYPEDEFS:
        return ctypes.c_void_p
    if base == "char*":
        return ctypes.c_char_p
    if base.endswith("**"):
        return ctypes.POINTER(ctypes.c_void_p)          # revl_X **out
    if base.endswith("*") and base[:-1] in STRUCTS and base[:-1] != "revl_allocator":
        return ctypes.POINTER(STRUCTS[base[:-1]])
    if base.endswith("*"):
        return ctypes.c_void_p                          # handles, arrays: addresses as ints
    raise TypeError(f"no ctypes mapping for C type {t!r}")


def _checkout_library():
    """<checkout>/lib/librevl.so.0 when this package is <checkout>/python/revl, else None."""
    root = pathlib.Path(__file__).resolve().parent.parent.parent
    if not (root / "include" / "revl.h").exists():
        return None
    return root / "lib" / f"librevl.so.{EXPECTED_MAJOR}"


def _bundled_library():
    """revl/_native/librevl.so.0: the copy pip installed inside the package (python/setup.py)."""
    return pathlib.Path(__file__).resolve().parent / "_native" / f"librevl.so.{EXPECTED_MAJOR}"


def _try_file(path, missing, tried):
    """The loaded library at path, or None with the reason appended to tried."""
    if not path.exists():
        tried.append(f"{path}: no such file ({missing})")
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        tried.append(f"{path}: {e}")
        return None


def _load():
    tried = []
    env = os.environ.get("REVL_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError(
                f"revl: cannot load the library named by REVL_LIBRARY={env!r}: {e}. "
                f"(REVL_LIBRARY was set, so no other place was tried; unset it to search "
                f"the package, the checkout's lib/ and the system loader.)") from None
    tried.append("REVL_LIBRARY: not set")
    path = _bundled_library()
    dll = _try_file(path, "the package was not installed by pip from a checkout", tried)
    if dll is not None:
        return dll, str(path)
    path = _checkout_library()
    if path is None:
        tried.append(f"checkout build directory: {pathlib.Path(__file__).resolve().parent} is "
                     f"not inside a revl checkout")
    else:
        dll = _try_file(path, "run 'make lib' in the checkout", tried)
        if dll is not None:
            return dll, str(path)
    found = ctypes.util.find_library("revl")
    names = ([found] if found else []) + [f"librevl.so.{EXPECTED_MAJOR}"]
    if not found:
        tried.append("ctypes.util.find_library('revl'): found nothing")
    for name in names:
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append(f"system loader, {name}: {e}")
    raise ImportError("revl: cannot find librevl. Tried, in order:\n  " + "\n  ".join(tried)
                      + "\nSet REVL_LIBRARY to the path of librevl.so.0, or build the checkout "
                      "with 'make lib', or install the package with pip from a checkout (it "
                      "then carries the library), or install the library where the system "
                      "loader finds it.")


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _loaded_file(dll, fallback):
    """The path of the file the loader actually mapped for dll (dladdr on one of its functions),
    so that revl.library_path is a file even when the system loader chose it by soname."""
    try:
        libc = ctypes.CDLL(None)
        libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        addr = ctypes.cast(dll.revl_version_string, ctypes.c_void_p)
        if libc.dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.abspath(os.fsdecode(info.dli_fname))
    except (AttributeError, OSError):
        pass
    return fallback


class _Lib:
    """The loaded library with every known function bound (missing ones raise Unavailable)."""

    def __init__(self):
        self.dll, name = _load()
        self.path = _loaded_file(self.dll, name)
        self.missing = set()
        for name, res, args in PROTOTYPES:
            try:
                f = getattr(self.dll, name)
            except AttributeError:
                self.missing.add(name)
                continue
            f.restype = ctype_of(res)
            f.argtypes = [ctype_of(a) for a in args]
            setattr(self, name[5:], f)          # lib.trainer_train, ...
        ver = self.version_number()
        if ver // 10000 != EXPECTED_MAJOR:
            raise ImportError(f"revl: {self.path} is version {ver // 10000}.{ver // 100 % 100}."
                              f"{ver % 100}; this package needs major version {EXPECTED_MAJOR}")

    def has(self, name):
        """Whether the library exports revl_<name> (name without the prefix, or with it)."""
        if not name.startswith("revl_"):
            name = "revl_" + name
        return name not in self.missing and any(p[0] == name for p in PROTOTYPES)

    def __getattr__(self, short):
        # only reached for names not bound above
        name = "revl_" + short
        if name in self.missing:
            raise Unavailable(name, self.path)
        raise AttributeError(short)


lib = _Lib()


def strerror(status):
    return lib.strerror(int(status)).decode("utf-8", "replace")


def init_struct(cls, init_fn):
    """A ctypes struct filled by the library's *_init function.  The init runs on a buffer with
    room to spare, so a library whose struct grew cannot write past ours; the struct_size we hand
    back is ours (the library accepts an older caller's smaller struct, or rejects it with
    REVL_ERR_INVALID)."""
    size = ctypes.sizeof(cls)
    buf = (ctypes.c_char * (size + 1024))()
    init_fn(ctypes.cast(buf, ctypes.POINTER(cls)))
    s = cls.from_buffer_copy(buf)
    s.struct_size = size
    return s
