"""Converting a public PyTorch checkpoint of one family (any size: kwargs from the command line).

  python main.py --config=configs/convert.py:FAMILY --workdir=DIR --mode=convert \\
      --config.convert.source=FILE --config.convert.source_kwargs='{"ch": 128, ...}' \\
      [--config.convert.verify_io=IO.npz]
FAMILY: ddpm_unet, iddpm_unet, score_sde_ddpmpp, edm, ddpm_torch_unet, ddpm_torch_toy,
psld_ncsnpp. source_kwargs are the original constructor's keyword arguments as that
repository names them (score_sde and PSLD: the model section of their config, as the
fixture MANIFESTs give it); EDM pickles carry their own. The public configs
(configs/celeba64.py, cifar10_ls.py, edm_cifar10.py, ...) fill them for the public files.
Afterwards `--mode=sample` needs only --workdir: the checkpoint's meta holds the rest.
"""
from configs import base

# FAMILY -> (config.model.name, time input, schedule, data)
FAMILIES = {
    'ddpm_unet': ('ddpm_unet', 'n-1', 'linear', 'cifar10'),
    'iddpm_unet': ('iddpm_unet', 'n', 'linear', 'cifar10'),
    'score_sde_ddpmpp': ('ncsnpp', '999t', 'vpsde', 'cifar10'),
    'edm': ('edm', 'sigma', 'linear', 'cifar10'),
    'ddpm_torch_unet': ('ddpm_torch_unet', 'n-1', 'linear', 'cifar10'),
    'ddpm_torch_toy': ('toy_mlp', 'n-1', 'linear', 'gaussian8'),
    'psld_ncsnpp': ('ncsnpp', 'psld_t', 'linear', 'cifar10'),
}


def get_config(family='ddpm_unet'):
  if family not in FAMILIES:
    raise ValueError(f'configs/convert.py:{family}: unknown family; one of: {", ".join(FAMILIES)}')
  name, time_input, schedule, data = FAMILIES[family]
  c = base.get_base_config()
  c.data.name = data
  c.model.name = name
  c.model.time_input = time_input if name != 'toy_mlp' else ''
  c.diffusion.schedule = schedule
  if family == 'ddpm_torch_toy':  # the toy's own schedule (B.4.2)
    c.diffusion.num_steps, c.diffusion.beta_start, c.diffusion.beta_end = 100, 1e-3, 0.2
  return c
