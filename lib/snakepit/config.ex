defmodule Snakepit.Config do
  @moduledoc """
  Reads upstream Snakepit's configuration (`config :snakepit, ...`, as of v0.4.3 and v0.13.0)
  into the options of the pools the application starts (`Snakepit.Pool.Options`).

  ## One pool or several

  Without `pools:`, one pool, `Snakepit.Pool`, from the top-level keys and `pool_config`:

      config :snakepit,
        pooling_enabled: true,
        pool_size: 4,
        adapter_module: Snakepit.Adapters.Python,
        python_executable: "/opt/venv/bin/python3",
        pool_config: %{
          adapter_args: ["--adapter", "my_pkg.MyAdapter"],
          adapter_env: [{"OMP_NUM_THREADS", "1"}],
          worker_ttl: {1, :hours},
          worker_max_requests: :infinity
        }

  With `pools:`, one pool per entry, each with its own `name`, `pool_size`, `adapter_module`,
  `adapter_args`, `adapter_env`, `worker_ttl`, `worker_max_requests`, `heartbeat` (and any
  `Snakepit.Pool` option by its own name):

      config :snakepit,
        pooling_enabled: true,
        pools: [
          %{name: :default, pool_size: 4, adapter_args: ["--adapter", "my_pkg.General"]},
          %{name: :ml, pool_size: 2, adapter_args: ["--adapter", "my_pkg.Model"]}
        ]

  Nothing starts without `pooling_enabled: true`.

  ## Pool names

  The default pool — the only one without `pools:`, else the first entry — is registered as
  `Snakepit.Pool`, so `Snakepit.execute/3`, `get_stats/0` and `Snakepit.Pool.await_ready/0`
  reach it without naming it. Its upstream name (without `pools:`, `pool_config.name` or
  `:default`; else the first entry's `name`) selects it too. Every other entry is registered under its `name`. A call
  chooses with `pool_name:` (upstream's option) or `pool:`; `pool/1` resolves a name.

  ## Where each setting comes from

  A pool's option is taken from, lowest precedence first:

    1. `timeout_profile` (upstream's profiles: `:balanced`, `:production`,
       `:production_strict`, `:development`, `:ml_inference`, `:batch`) for `:timeout` and
       `:queue_timeout`;
    2. top-level keys, every pool: `worker_timeout`, `pool_request_timeout`,
       `default_command_timeout` (each later one wins) for `:timeout`; `pool_queue_timeout`,
       `pool_max_queue_size`, `pool_startup_timeout`; `graceful_shutdown_timeout_ms` for
       `:shutdown_grace`; `adapter_module`, `python_executable`, `worker_ttl`,
       `worker_max_requests`, `max_start_failures`; `grpc_worker_health_check_interval` and
       `grpc_worker_health_check_timeout_ms`, then `heartbeat`, then `health_check_interval`
       and `health_check_timeout`;
    3. without `pools:`, `pool_config`; with `pools:`, the pool's entry, over `pool_config`'s
       `adapter_module` and `adapter_args` (what upstream falls back to there). Within it,
       `Snakepit.Pool` option names (`size`, `env`, ...) win over upstream's (`pool_size`,
       `adapter_env`, `heartbeat`); `env` and `adapter_env` are merged.

  `pool_size` follows v0.13: without `pools:`, the top-level `pool_size` wins over
  `pool_config.pool_size`; with `pools:`, the entry's `pool_size`, else `default_pool_size`,
  else the top-level `pool_size`. Otherwise `System.schedulers_online() * 2`.

  `heartbeat` (a map or keyword list, top level or per pool) maps onto health checks:
  `ping_interval_ms` is `:health_check_interval`, `timeout_ms` is `:health_check_timeout`,
  `enabled: false` turns them off. `max_missed_heartbeats` other than 1, `initial_delay_ms`
  other than 0 and `dependent: false` have no equivalent (a worker is replaced after its first
  failed check; the first check comes one interval after start; workers always stop with the
  BEAM) and are warned about.

  `worker_ttl` takes `{n, :seconds | :minutes | :hours}`, `:infinity` or milliseconds;
  `worker_max_requests` a count or `:infinity`. `log_level` (`:debug`, `:info`, `:warning`,
  `:error`, `:none`) sets the Logger level of snakepit_rs's modules while the application runs,
  and `SNAKEPIT_LOG_LEVEL` for workers (unless a pool's `env` sets it). `log_python_output:
  false` silences what workers print (read and dropped); `true`, the default here (upstream's
  is `false`), logs each line with the worker's metadata (see `Snakepit.Pool`, "Logs").
  `adapter_env` entries may have atom keys and non-string values; they are made strings.

  ## Sessions

  `affinity` (top level, in `pool_config` or in a `pools:` entry: `:hint`, `:strict_queue` or
  `:strict_fail_fast`, or upstream's strings in any case) is each pool's `:affinity`, the mode of
  session requests that do not choose one (see `Snakepit.execute_in_session/4`).
  `session_default_ttl` (seconds, upstream's key; default 3600) is each pool's `:session_ttl`:
  a session unused that long is no longer bound to its worker, as the session store forgets it.

  ## What is not read

  A key naming a feature snakepit_rs does not have (`grpc_port`, `grpc_listener`,
  `worker_profile: :thread`, `startup_batch_size`, …) or one it does not know gets one warning
  when the application starts, naming it; it never stops the application. An invalid value of
  a key that is read raises `ArgumentError` naming the key and the value.
  """

  alias Snakepit.Pool.Options

  @typedoc "A key's place in the configuration, as messages name it (e.g. `pools[:ml].pool_size`)."
  @type where :: String.t()

  # Top-level keys that set an option of every pool, lowest precedence first. The heartbeat
  # comes between the two health-check groups (see the moduledoc).
  @global_before_heartbeat [
    worker_timeout: :timeout,
    pool_request_timeout: :timeout,
    default_command_timeout: :timeout,
    pool_queue_timeout: :queue_timeout,
    pool_max_queue_size: :max_queue_size,
    pool_startup_timeout: :startup_timeout,
    graceful_shutdown_timeout_ms: :shutdown_grace,
    adapter_module: :adapter_module,
    python_executable: :python_executable,
    worker_ttl: :worker_ttl,
    worker_max_requests: :worker_max_requests,
    max_start_failures: :max_start_failures,
    affinity: :affinity,
    grpc_worker_health_check_interval: :health_check_interval,
    grpc_worker_health_check_timeout_ms: :health_check_timeout
  ]
  @global_after_heartbeat [
    health_check_interval: :health_check_interval,
    health_check_timeout: :health_check_timeout
  ]

  # Top-level keys read here or elsewhere, not as a pool option of the same name.
  # `process_registry_dir` is read by `Snakepit.ProcessRegistry`.
  @global_read [
    :pooling_enabled,
    :pools,
    :pool_config,
    :pool_size,
    :default_pool_size,
    :timeout_profile,
    :heartbeat,
    :log_level,
    :process_registry_dir,
    :session_default_ttl,
    # Read by `Snakepit.Bridge.SessionStore`.
    :session_cleanup_interval,
    :session_max_sessions,
    :session_store
  ]

  # Upstream v0.13's timeout profiles: {default execution timeout, queue timeout}.
  @timeout_profiles %{
    balanced: {300_000, 10_000},
    production: {300_000, 10_000},
    production_strict: {60_000, 5_000},
    development: {900_000, 60_000},
    ml_inference: {900_000, 60_000},
    batch: {3_600_000, 300_000}
  }

  @log_levels [:debug, :info, :warning, :error, :none]
  @default_key {__MODULE__, :default_pool}

  ## Reading

  @doc "Whether `pooling_enabled` asks the application to start pools (default: `false`)."
  @spec pooling_enabled?(keyword()) :: boolean()
  def pooling_enabled?(env \\ Application.get_all_env(:snakepit)) do
    case Keyword.get(env, :pooling_enabled, false) do
      enabled when is_boolean(enabled) -> enabled
      nil -> false
      other -> raise ArgumentError, invalid("pooling_enabled", "a boolean", other)
    end
  end

  @doc """
  The options of every pool the configuration describes, the default pool (`Snakepit.Pool`)
  first, each checked (`Snakepit.Pool.Options`). Raises `ArgumentError` naming the first invalid
  key and its value.
  """
  @spec pools!(keyword()) :: [keyword()]
  def pools!(env \\ Application.get_all_env(:snakepit)) do
    global = global_options(env)
    pool_config = pool_config!(env)

    case Keyword.fetch(env, :pools) do
      :error ->
        [legacy_pool(env, global, pool_config)]

      {:ok, nil} ->
        [legacy_pool(env, global, pool_config)]

      {:ok, entries} when is_list(entries) ->
        fallback = Map.take(pool_config, [:adapter_module, :adapter_args])

        entries
        |> Enum.with_index()
        |> Enum.map(fn {entry, index} -> pool_entry!(entry, index) end)
        |> check_unique_names!()
        |> Enum.with_index()
        |> Enum.map(fn {{name, entry}, index} ->
          pool_from_entry(env, global, fallback, name, entry, index)
        end)

      {:ok, other} ->
        raise ArgumentError, invalid("pools", "a list of maps", other)
    end
  end

  @doc """
  The default pool's options (`Snakepit.Pool`), whether or not `pooling_enabled` is set: what
  `Snakepit.run_as_script/2` starts when no pool runs.
  """
  @spec pool_options(keyword()) :: keyword()
  def pool_options(env \\ Application.get_all_env(:snakepit)) do
    case pools!(env) do
      [default | _] -> default
      [] -> legacy_pool(env, global_options(env), pool_config!(env))
    end
  end

  @doc "The Logger level `log_level` asks for, or `nil` when it is not set."
  @spec log_level!(keyword()) :: Logger.level() | :none | nil
  def log_level!(env \\ Application.get_all_env(:snakepit)) do
    case Keyword.get(env, :log_level) do
      nil -> nil
      :warn -> :warning
      level when level in @log_levels -> level
      other -> raise ArgumentError, invalid("log_level", inspect_list(@log_levels), other)
    end
  end

  ## Pool names

  @doc """
  Records the default pool's upstream name (`:default` without `pools:`, else the first
  entry's), which `pool/1` then resolves to `Snakepit.Pool`. Called when the application starts.
  """
  @spec remember_default_pool(keyword()) :: :ok
  def remember_default_pool(env) do
    name = default_pool_name(env)

    if :persistent_term.get(@default_key, :default) != name,
      do: :persistent_term.put(@default_key, name)

    :ok
  end

  @doc """
  Upstream's gRPC listener settings, asked by its examples' bootstrap (`ensure_grpc_port!/0`).
  snakepit_rs has no listener — workers talk over pipes — so it is always `{:ok, %{mode:
  :internal}}`, the answer that needs no port.
  """
  @spec grpc_listener_config() :: {:ok, %{mode: :internal}}
  def grpc_listener_config, do: {:ok, %{mode: :internal}}

  @doc "`grpc_listener_config/0`'s value."
  @spec grpc_listener_config!() :: %{mode: :internal}
  def grpc_listener_config!, do: %{mode: :internal}

  @doc """
  The registered name of the pool upstream code calls `name`: `Snakepit.Pool` for the default
  pool's name, else `name` itself.
  """
  @spec pool(atom()) :: atom()
  def pool(name) do
    if name == :persistent_term.get(@default_key, :default), do: Snakepit.Pool, else: name
  end

  defp default_pool_name(env) do
    case Keyword.get(env, :pools) do
      [first | _] -> entry_value(first, :name) || :default
      _ -> entry_value(Keyword.get(env, :pool_config), :name) || :default
    end
  end

  defp entry_value(entry, key) when is_map(entry), do: Map.get(entry, key)

  defp entry_value(entry, key) when is_list(entry) do
    case List.keyfind(entry, key, 0) do
      {^key, value} -> value
      nil -> nil
    end
  end

  defp entry_value(_entry, _key), do: nil

  ## Warnings

  @doc """
  One message per key the configuration sets but snakepit_rs does not read, naming where it
  is set and why it has no effect. Never raises: invalid values are `pools!/1`'s to report.
  """
  @spec ignored(keyword()) :: [String.t()]
  def ignored(env \\ Application.get_all_env(:snakepit)) do
    pools_mode? = is_list(Keyword.get(env, :pools))
    pool_config = Keyword.get(env, :pool_config)

    entries =
      if pools_mode?,
        do:
          for(entry <- env[:pools], do: {"pools[#{inspect(entry_value(entry, :name))}]", entry}),
        else: []

    # {kind, where, source, classifier}: where each group of keys is, and what its keys are.
    sections =
      [
        {:key, "", env, &global_key/2},
        {:key, "pool_config.", pool_config, &pool_config_key(&1, &2, pools_mode?)},
        {:heartbeat, "heartbeat.", Keyword.get(env, :heartbeat), &heartbeat_key/2}
      ] ++
        if(pools_mode?,
          do: [],
          else: [
            {:heartbeat, "pool_config.heartbeat.", entry_value(pool_config, :heartbeat),
             &heartbeat_key/2}
          ]
        ) ++
        Enum.flat_map(entries, fn {where, entry} ->
          [
            {:key, "#{where}.", entry, &pool_key/2},
            {:heartbeat, "#{where}.heartbeat.", entry_value(entry, :heartbeat), &heartbeat_key/2}
          ]
        end)

    found =
      for {kind, prefix, source, classify} <- sections,
          {key, value} <- entries(source),
          {:ignored, why} <- [classify.(key, value)],
          do: {{kind, key}, prefix <> key_name(key), why}

    # One message per key, naming every place it is set.
    found
    |> Enum.group_by(&elem(&1, 0))
    |> Enum.sort_by(fn {_key, [{_, where, _} | _]} -> where end)
    |> Enum.map(fn {_key, [{_, _, why} | _] = places} ->
      wheres = places |> Enum.map(&"`#{elem(&1, 1)}`") |> Enum.uniq() |> Enum.join(", ")
      "config :snakepit: #{wheres} ignored: #{why}"
    end)
  end

  ## Classification: what each key is to snakepit_rs

  @no_grpc "snakepit_rs has no gRPC (its workers talk to the BEAM over pipes)"
  @no_such "snakepit_rs has no such setting"

  # A top-level key: `{:option, name}`, `:read`, `:accepted` (our behaviour is what it asks),
  # `{:ignored, why}` or `{:invalid, expected}`.
  defp global_key(key, _value) when key in @global_read, do: :read
  defp global_key(:capacity_strategy, :pool), do: :accepted
  defp global_key(:default_worker_profile, :process), do: :accepted
  defp global_key(:cleanup_on_stop, true), do: :accepted
  defp global_key(:cleanup_on_stop, false), do: {:ignored, "workers always stop with their pool"}
  defp global_key(:process_group_kill, true), do: :accepted

  defp global_key(:process_group_kill, false),
    do: {:ignored, "a stopped worker's process group is always killed"}

  # Read by each pool when it starts (`Snakepit.Pool`, "Logs"): `false` silences workers' output.
  defp global_key(:log_python_output, value) when is_boolean(value), do: :accepted

  defp global_key(key, _value) do
    cond do
      Keyword.has_key?(@global_before_heartbeat, key) -> {:option, @global_before_heartbeat[key]}
      Keyword.has_key?(@global_after_heartbeat, key) -> {:option, @global_after_heartbeat[key]}
      true -> global_feature(key)
    end
  end

  defp global_feature(key) do
    if String.starts_with?(Atom.to_string(key), "grpc_"),
      do: {:ignored, @no_grpc},
      else: {:ignored, @no_such}
  end

  # In `pool_config`: with `pools:`, only what upstream falls back to there is read.
  defp pool_config_key(key, _value, true) when key in [:adapter_module, :adapter_args], do: :read

  defp pool_config_key(:heartbeat, _value, true),
    do: {:ignored, "`pools:` is set; the entries are read"}

  defp pool_config_key(key, value, true) do
    case pool_key(key, value) do
      {:ignored, why} ->
        {:ignored, why}

      _ ->
        {:ignored,
         "`pools:` is set; only `adapter_module` and `adapter_args` are read from `pool_config`"}
    end
  end

  defp pool_config_key(key, value, false), do: pool_key(key, value)

  # A key of `pool_config` or of a `pools:` entry.
  defp pool_key(:name, _value), do: :read
  defp pool_key(:pool_size, _value), do: {:option, :size}
  defp pool_key(:adapter_env, _value), do: :read
  defp pool_key(:heartbeat, _value), do: :read
  defp pool_key(:worker_profile, :process), do: :accepted
  defp pool_key(:worker_profile, :thread), do: {:ignored, "snakepit_rs has no thread profile"}
  defp pool_key(:worker_profile, _value), do: {:invalid, ":process or :thread"}
  defp pool_key(:capacity_strategy, :pool), do: :accepted

  defp pool_key(:capacity_strategy, value) when value in [:profile, :hybrid],
    do: {:ignored, "pools of snakepit_rs share no capacity"}

  defp pool_key(:capacity_strategy, _value), do: {:invalid, ":pool, :profile or :hybrid"}

  defp pool_key(key, _value) do
    if key in Options.names(), do: {:option, key}, else: {:ignored, @no_such}
  end

  # A key of a `heartbeat` map.
  defp heartbeat_key(:enabled, value) when is_boolean(value), do: :read
  defp heartbeat_key(:ping_interval_ms, _value), do: {:option, :health_check_interval}
  defp heartbeat_key(:timeout_ms, _value), do: {:option, :health_check_timeout}
  defp heartbeat_key(:max_missed_heartbeats, 1), do: :accepted

  defp heartbeat_key(:max_missed_heartbeats, n) when is_integer(n) and n > 1,
    do: {:ignored, "a worker is replaced after its first failed health check"}

  defp heartbeat_key(:initial_delay_ms, 0), do: :accepted

  defp heartbeat_key(:initial_delay_ms, ms) when is_integer(ms) and ms > 0,
    do: {:ignored, "the first health check comes one interval after a worker starts"}

  defp heartbeat_key(:dependent, true), do: :accepted
  defp heartbeat_key(:dependent, false), do: {:ignored, "workers always stop with the BEAM"}
  defp heartbeat_key(:enabled, _value), do: {:invalid, "a boolean"}
  defp heartbeat_key(:max_missed_heartbeats, _value), do: {:invalid, "a positive integer"}
  defp heartbeat_key(:initial_delay_ms, _value), do: {:invalid, "a non-negative integer"}
  defp heartbeat_key(:dependent, _value), do: {:invalid, "a boolean"}
  defp heartbeat_key(_key, _value), do: {:ignored, @no_such}

  ## Translation into pool options

  # The options every pool gets from the top level (precedence levels 1 and 2).
  defp global_options(env) do
    profile = profile_options(Keyword.get(env, :timeout_profile))

    before =
      for {key, option} <- @global_before_heartbeat,
          Keyword.has_key?(env, key),
          do: {option, check!(option, env[key], key_name(key))}

    heartbeat = heartbeat_options(Keyword.get(env, :heartbeat), "heartbeat", nil)

    after_ =
      for {key, option} <- @global_after_heartbeat,
          Keyword.has_key?(env, key),
          do: {option, check!(option, env[key], key_name(key))}

    profile
    |> put_all(session_options(env))
    |> put_all(before)
    |> put_all(heartbeat)
    |> put_all(after_)
  end

  # Upstream's session TTL is in seconds.
  defp session_options(env) do
    case Keyword.fetch(env, :session_default_ttl) do
      {:ok, seconds} when is_integer(seconds) and seconds > 0 ->
        [session_ttl: seconds * 1000]

      {:ok, :infinity} ->
        [session_ttl: nil]

      {:ok, other} ->
        raise ArgumentError,
              invalid("session_default_ttl", "a positive integer of seconds or :infinity", other)

      :error ->
        []
    end
  end

  # No profile and no timeout key: v0.13's defaults (its `:balanced` profile), so that a pool
  # configured as upstream's runs commands as long as upstream's did.
  defp profile_options(nil), do: profile_options(:balanced)

  defp profile_options(profile) do
    case Map.fetch(@timeout_profiles, profile) do
      {:ok, {timeout, queue_timeout}} ->
        [timeout: timeout, queue_timeout: queue_timeout]

      :error ->
        raise ArgumentError,
              invalid("timeout_profile", inspect_list(Map.keys(@timeout_profiles)), profile)
    end
  end

  defp legacy_pool(env, global, pool_config) do
    {layer, env_vars} = pool_layer(pool_config, "pool_config", Keyword.get(env, :heartbeat))

    size =
      first_set([
        {Keyword.get(env, :pool_size), "pool_size"},
        {layer[:size], nil},
        {Keyword.get(env, :default_pool_size), "default_pool_size"}
      ])

    finish(env, global, layer, env_vars, size, Snakepit.Pool)
  end

  defp pool_from_entry(env, global, fallback, name, entry, index) do
    where = "pools[#{inspect(name)}]"
    {fallback_layer, _} = pool_layer(fallback, "pool_config", nil)
    {layer, env_vars} = pool_layer(entry, where, Keyword.get(env, :heartbeat))

    size =
      first_set([
        {layer[:size], nil},
        {Keyword.get(env, :default_pool_size), "default_pool_size"},
        {Keyword.get(env, :pool_size), "pool_size"}
      ])

    registered = if index == 0, do: Snakepit.Pool, else: name
    finish(env, put_all(global, fallback_layer), layer, env_vars, size, registered)
  end

  # Precedence level 3 combined with the lower ones, then the size, the name and the env.
  defp finish(env, global, layer, env_vars, size, name) do
    opts = global |> put_all(Keyword.drop(layer, [:size, :env]))
    opts = if size, do: Keyword.put(opts, :size, size), else: opts

    env_vars =
      case log_level!(env) do
        nil -> env_vars
        level -> put_new_env(env_vars, "SNAKEPIT_LOG_LEVEL", Atom.to_string(level))
      end

    opts
    |> Keyword.put(:name, name)
    |> then(&if(env_vars == [], do: &1, else: Keyword.put(&1, :env, env_vars)))
  end

  # A `pool_config` map or a `pools:` entry as pool options (own names over upstream's), and its
  # environment (`adapter_env`, then `env` over it). `inherited` is the top-level heartbeat,
  # whose `enabled: false` holds unless this heartbeat says otherwise (as upstream merges them).
  defp pool_layer(source, where, inherited) do
    entries = entries(source)

    {upstream, own} =
      Enum.reduce(entries, {[], []}, fn {key, value}, {upstream, own} ->
        label = "#{where}.#{key_name(key)}"

        case pool_key(key, value) do
          {:option, :size} when key == :pool_size ->
            {[{:size, check!(:size, value, label)} | upstream], own}

          {:option, :env} ->
            {upstream, own}

          {:option, option} ->
            {upstream, [{option, check!(option, value, label)} | own]}

          {:invalid, expected} ->
            raise ArgumentError, invalid(label, expected, value)

          _ ->
            {upstream, own}
        end
      end)

    heartbeat = heartbeat_options(find(entries, :heartbeat), "#{where}.heartbeat", inherited)

    layer =
      [] |> put_all(Enum.reverse(upstream)) |> put_all(heartbeat) |> put_all(Enum.reverse(own))

    env_vars =
      env_list!(find(entries, :adapter_env), "#{where}.adapter_env")
      |> merge_env(env_list!(find(entries, :env), "#{where}.env"))

    {layer, env_vars}
  end

  defp heartbeat_options(nil, _where, _inherited), do: []

  defp heartbeat_options(heartbeat, where, inherited) do
    unless is_map(heartbeat) or Keyword.keyword?(heartbeat) or heartbeat_strings?(heartbeat),
      do: raise(ArgumentError, invalid(where, "a map or keyword list", heartbeat))

    entries = entries(heartbeat)
    enabled = find(entries, :enabled, find(entries(inherited), :enabled, true))

    options =
      for {key, value} <- entries, reduce: [] do
        acc ->
          label = "#{where}.#{key_name(key)}"

          case heartbeat_key(key, value) do
            {:option, option} -> Keyword.put(acc, option, check!(option, value, label))
            {:invalid, expected} -> raise ArgumentError, invalid(label, expected, value)
            _ -> acc
          end
      end

    if enabled == false, do: Keyword.put(options, :health_check_interval, nil), else: options
  end

  defp heartbeat_strings?(value),
    do: is_list(value) and Enum.all?(value, &match?({k, _} when is_binary(k), &1))

  defp pool_config!(env) do
    case Keyword.get(env, :pool_config) do
      nil ->
        %{}

      config when is_map(config) ->
        config

      config when is_list(config) ->
        if Keyword.keyword?(config),
          do: Map.new(config),
          else: raise(ArgumentError, invalid("pool_config", "a map", config))

      other ->
        raise ArgumentError, invalid("pool_config", "a map", other)
    end
  end

  defp pool_entry!(entry, index) do
    entry =
      cond do
        is_map(entry) -> entry
        is_list(entry) and Keyword.keyword?(entry) -> Map.new(entry)
        true -> raise ArgumentError, invalid("pools (entry #{index})", "a map", entry)
      end

    case Map.get(entry, :name) do
      name when is_atom(name) and name not in [nil, true, false] -> {name, entry}
      other -> raise ArgumentError, invalid("pools (entry #{index}).name", "an atom", other)
    end
  end

  defp check_unique_names!(entries) do
    names = Enum.map(entries, &elem(&1, 0))

    case names -- Enum.uniq(names) do
      [] ->
        entries

      [dup | _] ->
        raise ArgumentError, "config :snakepit `pools` names #{inspect(dup)} more than once"
    end
  end

  # A `{name, value}` environment: a map or list; names atoms or strings, values anything
  # `to_string/1` takes (as upstream accepts them).
  defp env_list!(nil, _where), do: []

  defp env_list!(env, where) when is_map(env) or is_list(env) do
    Enum.map(env, fn
      {name, value}
      when (is_binary(name) or is_atom(name)) and
             (is_binary(value) or is_atom(value) or is_number(value)) ->
        {to_string(name), to_string(value)}

      other ->
        raise ArgumentError, invalid(where, "a map or list of {name, value} pairs", other)
    end)
  end

  defp env_list!(env, where),
    do: raise(ArgumentError, invalid(where, "a map or list of {name, value} pairs", env))

  defp merge_env(base, over) do
    names = MapSet.new(over, &elem(&1, 0))
    Enum.reject(base, &MapSet.member?(names, elem(&1, 0))) ++ over
  end

  defp put_new_env(env_vars, name, value) do
    if List.keymember?(env_vars, name, 0), do: env_vars, else: env_vars ++ [{name, value}]
  end

  ## Helpers

  defp check!(option, value, where),
    do: Options.check!(option, value, "config :snakepit `#{where}`")

  defp first_set(candidates) do
    Enum.find_value(candidates, fn
      {nil, _where} -> nil
      {value, nil} -> value
      {value, where} -> check!(:size, value, where)
    end)
  end

  defp put_all(opts, more),
    do: Enum.reduce(more, opts, fn {k, v}, acc -> Keyword.put(acc, k, v) end)

  # Entries with atom keys (string keys of known atoms too, as upstream's heartbeat allows).
  defp entries(nil), do: []

  defp entries(source) when is_map(source) or is_list(source) do
    for {key, value} <- source, key = to_key(key), do: {key, value}
  end

  defp entries(_source), do: []

  # A string key stays a string (and is ignored) unless an atom of that name exists.
  defp to_key(key) when is_atom(key) or is_binary(key) do
    if is_binary(key), do: String.to_existing_atom(key), else: key
  rescue
    ArgumentError -> key
  end

  defp to_key(key), do: inspect(key)

  defp find(entries, key, default \\ nil) do
    case List.keyfind(entries, key, 0) do
      {^key, value} -> value
      nil -> default
    end
  end

  defp key_name(key), do: to_string(key)

  defp inspect_list(values), do: Enum.map_join(values, ", ", &inspect/1)

  defp invalid(where, expected, value),
    do:
      "invalid value for config :snakepit `#{where}`: expected #{expected}, got: #{inspect(value)}"
end
