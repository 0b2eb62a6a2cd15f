#Requires -Version 5.1
<#
.SYNOPSIS
    Helpers shared by the TestDriver workflow scripts in this folder.

.DESCRIPTION
    Initialize-TestVM.ps1, Install-TestDriver.ps1, New-LiveKernelDump.ps1,
    Remove-TestDriver.ps1 and Invoke-DumpAnalysis.ps1 import this module with

        Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

    and call its functions; each script still runs its own elevation check.
    Compatible with Windows PowerShell 5.1.

    Nothing here reads the localized text of a Windows tool (sc.exe's "STATE",
    bcdedit's "Yes"): service state and path come from WMI (Win32_SystemDriver),
    whose property values are the same on every display language.
#>

# A module has its own session state: set the same preferences the scripts use.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

function Test-Administrator {
    <#
    .SYNOPSIS
        Tells whether the current PowerShell process runs elevated.

    .DESCRIPTION
        Returns $true when the current Windows identity is in the built-in
        Administrators role (WindowsPrincipal.IsInRole), $false otherwise.

    .EXAMPLE
        if (-not (Test-Administrator)) { Write-Warning 'Not elevated.' }

    .OUTPUTS
        System.Boolean
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param()
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object -TypeName Security.Principal.WindowsPrincipal -ArgumentList $identity
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Assert-Administrator {
    <#
    .SYNOPSIS
        Stops the script unless PowerShell runs elevated.

    .DESCRIPTION
        Throws a terminating error that tells the user to run PowerShell with
        "Run as administrator" when Test-Administrator returns $false.

    .EXAMPLE
        Assert-Administrator
    #>
    [CmdletBinding()]
    param()
    if (-not (Test-Administrator)) {
        throw 'This script must run elevated: open PowerShell with "Run as administrator" and run it again.'
    }
}

function Invoke-NativeCommand {
    <#
    .SYNOPSIS
        Runs a native program and returns its exit code and output lines.

    .DESCRIPTION
        Native programs write errors to stderr; with $ErrorActionPreference = 'Stop',
        Windows PowerShell 5.1 would turn every stderr line into a terminating error,
        so the preference is relaxed to 'Continue' while the program runs and restored
        afterwards. stdout and stderr are merged and returned as strings. The caller
        checks ExitCode.

        $LASTEXITCODE is cleared before the call, so a program that could not be
        started is reported as such ("Could not run <FilePath>: ...") instead of
        leaving an unset or stale exit code behind (under Set-StrictMode an unset
        $LASTEXITCODE would itself throw and hide the real error).

    .PARAMETER FilePath
        The program to run (for example sc.exe, bcdedit.exe, verifier.exe). It must be
        found by Get-Command, otherwise the function throws "<FilePath> was not found on PATH.".

    .PARAMETER ArgumentList
        Arguments passed to the program, one array element per argument.

    .EXAMPLE
        $result = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('query', 'TestDrv')
        if ($result.ExitCode -ne 0) { throw "sc.exe query failed with exit code $($result.ExitCode)." }

    .OUTPUTS
        PSCustomObject with ExitCode (int) and Output (string[]).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @()
    )
    if (-not (Get-Command -Name $FilePath -ErrorAction SilentlyContinue)) {
        throw "$FilePath was not found on PATH."
    }
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    $lines = @()
    $code = $null
    $startError = $null
    $global:LASTEXITCODE = $null
    try {
        $lines = & $FilePath @ArgumentList 2>&1 | ForEach-Object { "$_" }
        $code = $global:LASTEXITCODE
    }
    catch {
        $startError = $_
    }
    finally {
        $ErrorActionPreference = $previous
    }
    if ($null -ne $startError) {
        throw "Could not run ${FilePath}: $($startError.Exception.Message)"
    }
    if ($null -eq $code) {
        throw "Could not run ${FilePath}: it did not start, so it set no exit code."
    }
    [pscustomobject]@{
        ExitCode = $code
        Output   = @($lines)
    }
}

function Write-NativeOutput {
    <#
    .SYNOPSIS
        Shows the non-blank output lines of an Invoke-NativeCommand result, indented.

    .PARAMETER Result
        The object returned by Invoke-NativeCommand (its Output property is shown).

    .EXAMPLE
        Write-NativeOutput (Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('query', 'TestDrv'))
    #>
    [CmdletBinding()]
    param($Result)
    foreach ($line in $Result.Output) {
        if ($line.Trim().Length -gt 0) {
            Write-Host "    $line"
        }
    }
}

function Resolve-ExistingFile {
    <#
    .SYNOPSIS
        Returns the full path of a file given by the user, or stops if it does not exist.

    .DESCRIPTION
        Throws "<Description> not found: <Path>" when Path is not an existing file,
        otherwise returns its provider path (Resolve-Path).

    .PARAMETER Path
        Path of the file, as the user gave it.

    .PARAMETER Description
        What the file is, used as the start of the error message (for example 'Driver').

    .EXAMPLE
        $driver = Resolve-ExistingFile -Path $DriverPath -Description 'Driver'

    .OUTPUTS
        System.String
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string]$Path,
        [Parameter(Mandatory)][string]$Description
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        throw "$Description not found: $Path"
    }
    return (Resolve-Path -LiteralPath $Path).ProviderPath
}

function Restart-ComputerIfRequested {
    <#
    .SYNOPSIS
        Ends a script that changed settings needing a reboot: restarts, or says so.

    .DESCRIPTION
        With -Restart, restarts the computer (Restart-Computer -Force) if the calling
        script's ShouldProcess agrees, so -WhatIf and -Confirm given to the script
        apply. Without -Restart, writes the lines of -Message instead.

    .PARAMETER Cmdlet
        The calling script's $PSCmdlet; its ShouldProcess decides on the restart.

    .PARAMETER Restart
        Restart the computer instead of writing -Message.

    .PARAMETER Message
        Lines written with Write-Host when not restarting (empty strings give blank lines).

    .EXAMPLE
        Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message 'REBOOT NEEDED: Restart-Computer.'
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][System.Management.Automation.PSCmdlet]$Cmdlet,
        [switch]$Restart,
        [Parameter(Mandatory)][AllowEmptyString()][string[]]$Message
    )
    if ($Restart) {
        if ($Cmdlet.ShouldProcess($env:COMPUTERNAME, 'Restart-Computer')) {
            Restart-Computer -Force
        }
    }
    else {
        foreach ($line in $Message) {
            Write-Host $line
        }
    }
}

function ConvertFrom-ImagePath {
    <#
    .SYNOPSIS
        Turns a service's ImagePath (PathName) into a plain full path.

    .DESCRIPTION
        sc.exe stores "C:\x\TestDriver.sys" as "\??\C:\x\TestDriver.sys"; drivers
        installed by Windows use "\SystemRoot\..." or "System32\drivers\...".
        Quotes and the \??\ prefix are removed, the other two forms are made absolute.

    .PARAMETER ImagePath
        The ImagePath as the registry or Win32_SystemDriver.PathName gives it.

    .EXAMPLE
        ConvertFrom-ImagePath -ImagePath '\??\C:\TestDriver\TestDriver.sys'

    .OUTPUTS
        System.String
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param([AllowEmptyString()][string]$ImagePath)
    $p = "$ImagePath".Trim().Trim('"')
    if ($p.StartsWith('\??\')) {
        $p = $p.Substring(4)
    }
    if ($p -match '^(?i)\\SystemRoot\\(.*)$') {
        $p = Join-Path -Path $env:SystemRoot -ChildPath $Matches[1]
    }
    elseif ($p -match '^(?i)system32\\') {
        $p = Join-Path -Path $env:SystemRoot -ChildPath $p
    }
    return $p
}

function Get-DriverService {
    <#
    .SYNOPSIS
        Describes the service of a given name from WMI: whether it exists, is a kernel driver, its state and file.

    .DESCRIPTION
        Reads Win32_SystemDriver (kernel and file system drivers) and, when no driver
        has the name, Win32_Service (a program's service that took the name). The State
        and ServiceType values of these classes are fixed strings ('Running', 'Stopped',
        'Kernel Driver', ...) on every display language, unlike the text sc.exe prints.
        Returns $null when no service has the name.

    .PARAMETER Name
        Service name (letters, digits and underscores).

    .EXAMPLE
        $service = Get-DriverService -Name 'TestDrv'
        if ($service -and $service.Running) { 'loaded' }

    .OUTPUTS
        PSCustomObject with Name, IsKernelDriver, ServiceType, State, Running, Stopped, PathName
        and Path (the PathName as a plain full path), or $null.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9_]+$')][string]$Name
    )
    $found = Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$Name'"
    if (-not $found) {
        $found = Get-CimInstance -ClassName Win32_Service -Filter "Name='$Name'"
    }
    if (-not $found) {
        return $null
    }
    $found = @($found)[0]
    [pscustomobject]@{
        Name           = [string]$found.Name
        IsKernelDriver = ([string]$found.ServiceType -eq 'Kernel Driver')
        ServiceType    = [string]$found.ServiceType
        State          = [string]$found.State
        Running        = ([string]$found.State -eq 'Running')
        Stopped        = ([string]$found.State -eq 'Stopped')
        PathName       = [string]$found.PathName
        Path           = (ConvertFrom-ImagePath -ImagePath ([string]$found.PathName))
    }
}

function Find-TestDriverBuild {
    <#
    .SYNOPSIS
        Lists the TestDriver.sys (or .pdb) files that "cargo make" left in the repository, newest first.

    .DESCRIPTION
        windows-drivers-rs writes the driver package to target\<profile>\TestDriver_package:
        plain "cargo make" builds the debug profile (target\debug\...), "cargo make default
        --release" the release profile (target\release\...), and "--target
        x86_64-pc-windows-msvc" adds the triple (target\x86_64-pc-windows-msvc\<profile>\...).
        Older windows-drivers-rs releases named the folder "package". Every existing
        candidate is returned, sorted by LastWriteTime, newest first, so the caller can
        use the first and say which it used.

    .PARAMETER RepositoryRoot
        The repository root (the folder holding target\).

    .PARAMETER FileName
        TestDriver.sys or TestDriver.pdb (the package folder holds both).

    .EXAMPLE
        $builds = @(Find-TestDriverBuild -RepositoryRoot (Split-Path -Parent $PSScriptRoot) -FileName 'TestDriver.sys')

    .OUTPUTS
        System.IO.FileInfo, newest first; nothing when no build exists.
    #>
    [CmdletBinding()]
    [OutputType([IO.FileInfo])]
    param(
        [Parameter(Mandatory)][string]$RepositoryRoot,
        [Parameter(Mandatory)][ValidateSet('TestDriver.sys', 'TestDriver.pdb')][string]$FileName
    )
    $found = New-Object -TypeName 'System.Collections.Generic.List[System.IO.FileInfo]'
    foreach ($targetFolder in @('target', 'target\x86_64-pc-windows-msvc')) {
        foreach ($buildProfile in @('release', 'debug')) {
            foreach ($packageFolder in @('TestDriver_package', 'package')) {
                $relative = Join-Path -Path $targetFolder -ChildPath (Join-Path -Path $buildProfile -ChildPath $packageFolder)
                $file = Join-Path -Path (Join-Path -Path $RepositoryRoot -ChildPath $relative) -ChildPath $FileName
                if (Test-Path -LiteralPath $file -PathType Leaf) {
                    $found.Add((Get-Item -LiteralPath $file))
                }
            }
        }
    }
    return @($found | Sort-Object -Property LastWriteTime -Descending)
}

# Quoted names: the tree-sitter grammar used by check-ps1-syntax.py rejects a bare-word list.
Export-ModuleMember -Function @(
    'Test-Administrator',
    'Assert-Administrator',
    'Invoke-NativeCommand',
    'Write-NativeOutput',
    'Resolve-ExistingFile',
    'Restart-ComputerIfRequested',
    'ConvertFrom-ImagePath',
    'Get-DriverService',
    'Find-TestDriverBuild'
)
