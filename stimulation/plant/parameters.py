"""Constants of the basal-ganglia network (Rubin & Terman 2004; So, Kent & Grill 2012).

Units: membrane potential mV, time ms, conductance mS/cm2, current density uA/cm2, capacitance
uF/cm2 (C_m = 1 for every cell). Shared by the numba kernel (:mod:`stimulation.plant._kernel`, where
numba freezes these module-level floats as compile-time constants) and the numpy oracle
(:mod:`stimulation.plant.reference`).

Sources
-------
- Rubin JE, Terman D (2004). High frequency stimulation of the subthalamic nucleus eliminates
  pathological thalamic rhythmicity in a computational model. J Comput Neurosci 16:211-235.
- Terman D, Rubin JE, Yew AC, Wilson CJ (2002). Activity patterns in a model for the
  subthalamopallidal network of the basal ganglia. J Neurosci 22:2963-2976.
- So RQ, Kent AR, Grill WM (2012). Relative contributions of local cell and passing fiber activation
  and silencing to changes in thalamic fidelity during deep brain stimulation and lesioning: a
  computational modeling study. J Comput Neurosci 32:499-519 (ModelDB 141699).
"""

from __future__ import annotations

NUCLEI: tuple[str, ...] = ("th", "stn", "gpe", "gpi")
STATES: tuple[str, ...] = ("healthy", "pd")
DBS_TARGETS: tuple[str, ...] = ("stn", "gpe", "gpi")

# --- thalamocortical relay cell (Rubin & Terman 2004) -------------------------------------------
TH_GL, TH_EL = 0.05, -70.0
TH_GNA, TH_ENA = 3.0, 50.0
TH_GK, TH_EK = 5.0, -75.0
TH_GT, TH_ET = 5.0, 0.0

# --- STN (Terman 2002; Rubin & Terman 2004; So 2012) --------------------------------------------
STN_GL, STN_EL = 2.25, -60.0
STN_GNA, STN_ENA = 37.0, 55.0
STN_GK, STN_EK = 45.0, -80.0
STN_GT = 0.5
STN_GCA, STN_ECA = 2.0, 140.0
STN_GAHP, STN_K1 = 20.0, 15.0
STN_EPS_CA, STN_KCA = 3.75e-5, 22.5
STN_PHI_N, STN_PHI_H, STN_PHI_R, STN_PHI_C = 0.75, 0.75, 0.2, 0.08

# --- GPe and GPi (same membrane; Terman 2002; Rubin & Terman 2004) ------------------------------
GP_GL, GP_EL = 0.1, -65.0
GP_GNA, GP_ENA = 120.0, 55.0
GP_GK, GP_EK = 30.0, -80.0
GP_GT = 0.5
GP_GCA, GP_ECA = 0.15, 120.0
GP_GAHP, GP_K1 = 10.0, 10.0
GP_EPS_CA, GP_KCA = 1e-4, 15.0
GP_PHI_N, GP_PHI_H, GP_PHI_R = 0.1, 0.05, 1.0
GP_TAU_R = 30.0

# --- synapses (So 2012, ModelDB 141699 BGnetwork.m) ------------------------------------------
# STN and GPi send alpha-function synapses (tau 5 ms) triggered at an upward crossing of -10 mV:
# s'' = -2/tau s' - s/tau^2, with s' jumping by peak * e / tau at each spike, so that a lone spike
# gives s(t) = peak * (t / tau) * exp(1 - t / tau) (peak 0.43 for STN, 0.3 for GPi).
SYN_TAU_MS = 5.0
SYN_THRESHOLD_MV = -10.0
SYN_PEAK_STN = 0.43
SYN_PEAK_GPI = 0.3
# GPe sends first-order synapses (Terman 2002; Rubin & Terman 2004):
# s' = alpha (1 - s) H_inf(v - theta) - beta s, H_inf(x) = 1 / (1 + exp(-(x + 57) / 2)).
GPE_SYN_ALPHA, GPE_SYN_BETA, GPE_SYN_THETA = 2.0, 0.04, 20.0
# Conductances (mS/cm2) and reversal potentials (mV). Every projection but GPi -| TH averages two
# presynaptic cells on a ring (So 2012 code, 0-based indices modulo the cell count):
#   STN_i <- GPe_{i, i+1};  GPe_i <- STN_{i, i-1}, GPe_{i+1, i-2};  GPi_i <- STN_{i, i-1}, GPe_{i+1, i-2};
#   TH_i <- GPi_i (with a factor 1.4 on its conductance).
G_GPE_STN, E_GPE_STN = 1.0, -85.0  # GPe -| STN
G_STN_GPE, E_STN_GPE = 0.3, 0.0  # STN -> GPe
G_GPE_GPE, E_GPE_GPE = 1.0, -85.0  # GPe -| GPe
G_STN_GPI, E_STN_GPI = 0.3, 0.0  # STN -> GPi
G_GPE_GPI, E_GPE_GPI = 1.0, -85.0  # GPe -| GPi
G_GPI_TH, E_GPI_TH = 1.4 * 0.08, -85.0  # GPi -| TH (one to one)

# --- applied currents (So 2012): healthy -> Parkinsonian ----------------------------------------
I_APP: dict[str, dict[str, float]] = {
    "healthy": {"stn": 33.0, "gpe": 21.0, "gpi": 22.0, "th": 0.0},
    "pd": {"stn": 23.0, "gpe": 8.0, "gpi": 16.0, "th": 0.0},
}
GPE_I_APP_SD = 2.0  # per-cell N(0, 2) offset of the GPe applied current (both states), drawn once

# --- sensorimotor-cortex drive to the thalamus (So 2012) ----------------------------------------
SMC_AMPLITUDE = 3.5  # uA/cm2
SMC_PULSE_MS = 5.0
SMC_RATE_HZ = 14.0
SMC_CV = 0.2  # of the gamma-distributed instantaneous rate (So 2012 createSMC.m: each interval
# is 1 / f with f ~ Gamma(shape 1 / CV^2, scale rate * CV^2), rounded to the time step)

# --- thresholds -----------------------------------------------------------------------------------
TH_SPIKE_THRESHOLD_MV = -40.0  # So 2012 error index: a thalamic spike crosses -40 mV upwards
SPIKE_THRESHOLD_MV = -10.0  # STN, GPe, GPi spikes (also the synaptic trigger)

# --- DBS of So 2012 (creatdbs.m) -----------------------------------------------------------------
DBS_AMPLITUDE = 300.0  # uA/cm2
DBS_PULSE_WIDTH_US = 300.0

# --- initial conditions (So 2012 initial.m): v ~ N(-62, 5^2), gates at steady state, Ca 0.1 ---
V_INIT_MEAN_MV = -62.0
V_INIT_SD_MV = 5.0
CA_INIT = 0.1
